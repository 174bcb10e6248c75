"""CONLL2003: each exported annotation's text as tokens with IOB named-entity tags, one token per line.

The file is the one label-studio-sdk 2.1.2's converter writes for `CONLL2003` (Label Studio serves it
as is): a `-DOCSTART- -X- O` line, then for each annotation that is not cancelled (newest first per
task; a task with an empty annotation list gives its text with every tag `O`) one
`<token> -X- _ <tag>` line per token and an empty line.

Tokens follow the Penn Treebank conventions the SDK applies (nltk's Treebank word tokenizer, with `/`
also split off): punctuation, brackets, quotes, `--`, `...` and clitics such as `n't` or `'s` become
tokens of their own. A token is tagged from the spans of the first `Labels` control with results in
the annotation, walked in order of their start the way the SDK walks them: a token overlapping the
current span gets `B-<first label>` (then `I-`); a span starting inside an earlier one takes over only
from the first token after the earlier one (with a new `B-`), a span nested inside an earlier one is
never used, and when any span lacks `start` or `end` every tag is `O`.

Where the SDK stops with an exception this module chooses instead:

- several data fields in the config: the text is the field the `Labels` control points at (the SDK
  picks one at random);
- a task without that text, or whose text is not a string, and spans whose `start`/`end` are not
  numbers: a `ConversionError` naming the task (and annotation);
- a rewritten quote token that cannot be found again in the text (the SDK would stop; no such text
  is known) is placed at the next quote ahead instead.
"""

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping
from itertools import accumulate
from operator import add, itemgetter
from typing import Any, BinaryIO

from exports.converters.json_min import NO_ANNOTATION, JsonMinConverter
from exports.converters.registry import ConversionContext, ConversionError
from exports.converters.source import TaskSource

__all__ = ["convert", "iob_tags", "token_spans"]

HEADER = b"-DOCSTART- -X- O\n"

# The tokenizer rewrites the text in stages, padding the pieces that become tokens with spaces, and
# then splits on whitespace. Each stage is (pattern, replacement), applied in order.
_OPENING_QUOTES = (
    (re.compile(r'^"'), "``"),  # a double quote opening the text
    (re.compile(r"(``)"), r" \1 "),
    (re.compile(r"([ ([{<])(\"|'')"), r"\1 `` "),  # a double quote after a space or an opening bracket
)
_PUNCTUATION = (
    (re.compile(r"([:,])([^\d])"), r" \1 \2"),  # `:` and `,` unless inside a number (`3,000`, `10:30`)
    (re.compile(r"([:,])$"), r" \1 "),
    (re.compile(r"\.\.\."), r" ... "),
    (re.compile(r"[;@#$/%&]"), r" \g<0> "),
    (re.compile(r"""([^.])(\.)([\])}>"']*)\s*$"""), r"\1 \2\3 "),  # the full stop ending the text
    (re.compile(r"[?!]"), r" \g<0> "),
    (re.compile(r"([^'])' "), r"\1 ' "),  # a closing single quote
)
_BRACKETS = (re.compile(r"[\][(){}<>]"), r" \g<0> ")
_DASHES = (re.compile(r"--"), r" -- ")
_CLOSING_QUOTES = (
    (re.compile(r"''"), " '' "),
    (re.compile(r'"'), " '' "),
    (re.compile(r"([^' ])('[sSmMdD]|') "), r"\1 \2 "),
    (re.compile(r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) "), r"\1 \2 "),
)
# Words written as one that are two tokens (`cannot` → `can not`), matched without regard to case.
_SPLIT_WORDS = tuple(
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        r"\b(can)(not)\b",
        r"\b(d)('ye)\b",
        r"\b(gim)(me)\b",
        r"\b(gon)(na)\b",
        r"\b(got)(ta)\b",
        r"\b(lem)(me)\b",
        r"\b(more)('n)\b",
        r"\b(wan)(na)(?=\s)",
        r" ('t)(is)\b",
        r" ('t)(was)\b",
    )
)
_QUOTE_TOKENS = frozenset({'"', "``", "''"})
_QUOTES_IN_TEXT = re.compile(r"``|''|\"")
# A run of non-space characters, named `bare` when it holds none of the characters a rule acts on.
_RUN = re.compile(r"""(?P<bare>[^\s"'`:,.;@#$/%&?!()\[\]{}<>-]+)(?!\S)|\S+""")
# Letters-only words the tokenizer cuts in two (lower case); a text holding one is tokenized run by run.
_SPLIT_WORDS_TEXT = ("cannot", "gimme", "gonna", "gotta", "lemme", "wanna")
# One of the characters some rule acts on.
_SPECIAL_CHARACTER = re.compile(r"""["'`:,.;@#$/%&?!()\[\]{}<>-]""")
_PLUS_ONE = (1).__add__
_RUN_CACHE: dict[tuple[str, str, str, bool], tuple[tuple[str, ...], tuple[tuple[int, int], ...]]] = {}
_RUN_CACHE_SIZE = 100_000


def _tokens(text: str) -> list[str]:
    """The text's tokens, with double quotes written as the tokenizer writes them (`` `` `` or `''`)."""
    if '"' in text or "``" in text or "''" in text:
        for pattern, replacement in _OPENING_QUOTES:
            text = pattern.sub(replacement, text)
    for pattern, replacement in _PUNCTUATION:
        text = pattern.sub(replacement, text)
    text = _BRACKETS[0].sub(_BRACKETS[1], text)
    text = _DASHES[0].sub(_DASHES[1], text)
    text = f" {text} "
    for pattern, replacement in _CLOSING_QUOTES:
        text = pattern.sub(replacement, text)
    for pattern in _SPLIT_WORDS:
        text = pattern.sub(r" \1 \2 ", text)
    return text.split()


def token_spans(text: str) -> list[tuple[int, int]]:
    """Each token's (start, end) character offsets in `text`, end exclusive (see `tokenize`)."""
    _words, starts, ends = tokenize(text)
    return list(zip(starts, ends, strict=True))


def tokenize(text: str) -> tuple[list[str], list[int], list[int]]:
    """The text's tokens as written in it, with their start and end (exclusive) offsets.

    Tokens are found in the text one after the other. A rewritten double quote stands for the next
    quote of the original text (`"`, `` `` `` or `''`); when that one is not ahead, the next quote that
    is ahead is taken. Raises ValueError when a token cannot be found.

    The text is cut into runs of non-space characters. A run of letters, digits and other characters
    no rule acts on is a token as it is, unless the text holds a word the tokenizer splits (`cannot`).
    Every rule looks at most one character beyond a run, and that character is a space, so any other
    run is tokenized with just its neighbouring characters: the same run in the same surroundings always
    gives the same tokens, which are cached (texts repeat their words).
    """
    if '"' in text or "''" in text:
        return _from_spans(text, _align_with_quotes(text, _all_tokens(text)))
    lowered = text.lower()
    if any(word in lowered for word in _SPLIT_WORDS_TEXT):
        return _from_spans(text, _spans_run_by_run(text, bare_runs=False))
    runs = text.split()
    stripped = text.strip()
    if not runs or " ".join(runs) != stripped:  # other spaces than one ` ` between runs
        return _from_spans(text, _spans_run_by_run(text, bare_runs=True))
    # Runs one space apart: their offsets follow from their lengths, computed at C speed; then the
    # runs holding a character some rule acts on are replaced by their tokens.
    leading = len(text) - len(text.lstrip())
    lengths = list(map(len, runs))
    starts = list(accumulate(map(_PLUS_ONE, lengths), initial=leading))
    starts.pop()
    ends = list(map(add, starts, lengths))
    special = {bisect_right(starts, found.start()) - 1 for found in _SPECIAL_CHARACTER.finditer(text)}
    words_end = leading + len(stripped)
    for index in sorted(special, reverse=True):
        start = starts[index]
        pieces, relative = _run_tokens(text, start, ends[index], words_end)
        if len(relative) != len(pieces):  # a token not in the text as written: align the whole text
            return _from_spans(text, _align_with_quotes(text, _all_tokens(text)))
        if len(pieces) != 1 or relative[0] != (0, lengths[index]):
            runs[index : index + 1] = pieces
            starts[index : index + 1] = [start + first for first, _last in relative]
            ends[index : index + 1] = [start + last for _first, last in relative]
    return runs, starts, ends


def _from_spans(text: str, spans: list[tuple[int, int]]) -> tuple[list[str], list[int], list[int]]:
    return [text[start:end] for start, end in spans], [start for start, _ in spans], [end for _, end in spans]


def _spans_run_by_run(text: str, *, bare_runs: bool) -> list[tuple[int, int]]:
    """`token_spans` of a text without double quotes, one run of non-space characters at a time; a run
    named `bare` is one token when `bare_runs` is set."""
    words_end = len(text.rstrip())
    spans: list[tuple[int, int]] = []
    append = spans.append
    for match in _RUN.finditer(text):
        if bare_runs and match.lastgroup == "bare":
            append(match.span())
            continue
        start = match.start()
        tokens, relative = _run_tokens(text, start, match.end(), words_end)
        if len(relative) != len(tokens):  # a token not in the text as written: align the whole text
            return _align_with_quotes(text, _all_tokens(text))
        for first, last in relative:
            append((start + first, start + last))
    return spans


def _all_tokens(text: str) -> list[str]:
    words_end = len(text.rstrip())
    tokens: list[str] = []
    for match in _RUN.finditer(text):
        tokens.extend(_run_tokens(text, *match.span(), words_end)[0])
    return tokens


def _run_tokens(text: str, start: int, end: int, words_end: int) -> tuple[tuple[str, ...], tuple[tuple[int, int], ...]]:
    """The tokens of the run `text[start:end]` and their offsets within it (cached by the run and its
    surroundings)."""
    key = (text[start - 1] if start else "", text[start:end], text[end : end + 1], end < words_end)
    cached = _RUN_CACHE.get(key)
    if cached is None:
        if len(_RUN_CACHE) >= _RUN_CACHE_SIZE:
            _RUN_CACHE.clear()
        cached = _RUN_CACHE[key] = _tokenize_run(*key)
    return cached


def _tokenize_run(before: str, run: str, after: str, more: bool) -> tuple[tuple[str, ...], tuple[tuple[int, int], ...]]:
    # A marker word after the space keeps rules anchored at the text's end (`$`) off a run that is
    # not the last; it comes out as a token of its own and is dropped.
    tokens = _tokens(before + run + after + ("x" if more else ""))
    if more:
        tokens.pop()
    spans = []
    point = 0
    for token in tokens:
        start = run.find(token, point)
        if start < 0:  # a rewritten quote: the caller aligns the whole text instead
            return tuple(tokens), ()
        point = start + len(token)
        spans.append((start, point))
    return tuple(tokens), tuple(spans)


def _align_with_quotes(text: str, tokens: list[str]) -> list[tuple[int, int]]:
    originals = (found.group() for found in _QUOTES_IN_TEXT.finditer(text))
    spans = []
    point = 0
    for token in tokens:
        is_quote = token in _QUOTE_TOKENS
        if is_quote:
            token = next(originals, token)
        start = text.find(token, point)
        if start >= 0:
            end = start + len(token)
        elif is_quote and (found := _QUOTES_IN_TEXT.search(text, point)):
            start, end = found.span()
        else:
            raise ValueError(f"token {token!r} is not in the text")
        spans.append((start, end))
        point = end
    return spans


def iob_tags(spans: list[tuple[int, int]], regions: Iterable[Mapping[str, Any]] | None) -> list[str]:
    """The tag of each token (given as offsets) for the regions of one `Labels` control.

    The regions are walked in order of their start, holding one current region: a token starting
    after the current region's end moves on to the next region that the token does not start after.
    A token overlapping the current region gets `B-<label>` for the first such token, then `I-<label>`.
    """
    return _tags([start for start, _end in spans], [end for _start, end in spans], regions)


def _tags(starts: list[int], ends: list[int], regions: Iterable[Mapping[str, Any]] | None) -> list[str]:
    tags = ["O"] * len(starts)
    regions = list(regions or ())
    if not regions or not starts:
        return tags
    for region in regions:
        if region.get("start") is None or region.get("end") is None:
            return tags
    if len(regions) > 1:
        regions.sort(key=itemgetter("start"))
    index, count = 0, len(starts)
    number, current = 0, regions[0]
    while index < count:
        if starts[index] > current["end"] - 1:
            # Move on to the next region this token does not start after (else stay on the last one).
            number += 1
            while number < len(regions) and starts[index] > regions[number]["end"] - 1:
                number += 1
            if number >= len(regions):
                break  # every later token starts after the last region: all `O`
            current = regions[number]
        # Tokens from here to `stop` start within the current region (ends inclusive); those ending
        # after its start overlap it.
        stop = bisect_right(starts, current["end"] - 1, index)
        labels = current.get("labels")
        if labels and isinstance(labels, list | str):
            first = bisect_left(ends, current["start"] + 1, index, stop)
            if first < stop:
                tags[first] = f"B-{labels[0]}"
                tags[first + 1 : stop] = [f"I-{labels[0]}"] * (stop - first - 1)
        index = stop
    return tags


def convert(source: TaskSource, out: BinaryIO, context: ConversionContext) -> None:
    converter = JsonMinConverter(context.label_config)
    text_key = _text_key(context.label_config)
    out.write(HEADER)
    for task in source.tasks():
        tokens: tuple[list[int], list[int]] | None = None  # the text's token starts and ends
        prefixes: list[str] = []  # each token's line without its tag
        untagged: bytes | None = None  # the task's lines with every tag `O`, made once
        for annotation in converter.exported_annotations(task):
            if tokens is None:
                text = _text(task, text_key)
                try:
                    words, starts, ends = tokenize(text)
                except ValueError as error:
                    raise ConversionError(f"Task {task.get('id')}: the text cannot be tokenized ({error})") from error
                tokens = starts, ends
                prefixes = [f"{word} -X- _ " for word in words]
            regions = _labels_regions(converter, task, annotation)
            if not prefixes:
                out.write(b"\n")
            elif regions:
                lines = "\n".join(map(add, prefixes, _tags(*tokens, regions)))
                out.write(f"{lines}\n\n".encode())
            else:
                if untagged is None:
                    untagged = "\n".join(prefix + "O" for prefix in prefixes).encode() + b"\n\n"
                out.write(untagged)


def _labels_regions(
    converter: JsonMinConverter, task: Mapping[str, Any], annotation: Mapping[str, Any]
) -> list[Mapping[str, Any]]:
    """The region values of the annotation's first control (by first appearance) of type `Labels`.

    Raises ConversionError for a region whose `start` or `end` is given but is not a number.
    """
    chosen = None
    seen: set[str] = set()
    regions: list[Mapping[str, Any]] = []
    for region in annotation.get("result") or ():
        kind = converter.region_type(region)
        if kind is None:
            continue
        from_name = region["from_name"]
        if chosen is None:
            if from_name in seen:
                continue
            seen.add(from_name)
            if not (isinstance(kind, str) and kind.lower() == "labels"):
                continue
            chosen = from_name
        elif from_name != chosen:
            continue
        value = region.get("value")
        if not isinstance(value, dict | Mapping):
            value = {}
        for key in ("start", "end"):
            offset = value.get(key)
            if offset is not None and (isinstance(offset, bool) or not isinstance(offset, int | float)):
                where = f"Task {task.get('id')}"
                if annotation is not NO_ANNOTATION:
                    where += f", annotation {annotation.get('id')}"
                raise ConversionError(f"{where}: a span's {key} is {offset!r}, not a character offset")
        regions.append(value)
    return regions


def _text_key(label_config: Mapping[str, Mapping[str, Any]]) -> str:
    """The data field holding the text: the input of the first `Labels` control, else of any control."""
    controls = sorted(label_config.values(), key=lambda info: info.get("type") != "Labels")
    for info in controls:
        for source in info.get("inputs") or ():
            if source.get("value"):
                return source["value"]
    raise ConversionError("The label config has no text for CoNLL 2003: no control points at a data field")


def _text(task: Mapping[str, Any], key: str) -> str:
    data = task.get("data")
    text = data.get(key) if isinstance(data, Mapping) else None
    if not isinstance(text, str):
        found = "no" if text is None else f"a {type(text).__name__} as its"
        raise ConversionError(f"Task {task.get('id')} has {found} text in the data field '{key}'")
    return text
