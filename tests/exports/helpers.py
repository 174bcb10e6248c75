from django.urls import reverse

EXPORT_KEYS = {
    "title",
    "id",
    "created_by",
    "created_at",
    "finished_at",
    "status",
    "md5",
    "counters",
    "converted_formats",
}
OPTION_KEYS = {"task_filter_options", "annotation_filter_options", "serialization_options"}


def list_url(project) -> str:
    return reverse("project-exports-list", kwargs={"pk": project.pk})


def detail_url(project, export_id: int) -> str:
    return reverse("project-exports-detail", kwargs={"pk": project.pk, "export_pk": export_id})


def download_url(project, export_id: int) -> str:
    return reverse("project-exports-download", kwargs={"pk": project.pk, "export_pk": export_id})


def create_export(client, project, django_capture_on_commit_callbacks, body=None) -> dict:
    """POST a snapshot and run its job the way the service does: once the request's transaction commits."""
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(list_url(project), body or {}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def uniform_rle(*, pixels: int, value: int) -> list[int]:
    """A Label Studio brush RLE of `pixels` RGBA pixels all equal to `value`, written as long repeated runs, so even
    a mask of hundreds of megabytes takes a few kilobytes (as a real one-colour mask does)."""
    count = pixels * 4
    bits = [f"{count:032b}", f"{8 - 1:05b}", "1111" * 4]  # byte words, 16-bit run lengths in every field
    while count:
        run = min(count, 1 << 16)
        bits.append(f"111{run - 1:016b}{value:08b}")  # a repeated run, length field 3
        count -= run
    text = "".join(bits)
    text += "0" * (-len(text) % 8)
    return [int(text[k : k + 8], 2) for k in range(0, len(text), 8)]
