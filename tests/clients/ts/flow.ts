// The scripted flow through the TypeScript client @hey-api/openapi-ts generated from the checked-in schema:
// the same steps as tests/clients/python_flow.py, only generated functions and types, no hand-written requests.
// Usage: node dist/flow.js <base url> <API token>. Prints "flow completed" and exits 0, or names the failed step.

import { createHash } from 'node:crypto';

import { createClient } from './generated/client';
import {
  apiProjectsCreate,
  apiProjectsDuplicateCreate,
  apiProjectsExportFormatsRetrieve,
  apiProjectsExportsConvertCreate,
  apiProjectsExportsCreate,
  apiProjectsExportsDownloadRetrieve,
  apiProjectsExportsList,
  apiProjectsExportsRetrieve,
  apiProjectsImportCreate,
  apiProjectsImportPredictionsCreate,
  apiProjectsList,
  apiProjectsPartialUpdate,
  apiProjectsRetrieve,
  apiProjectsValidateCreate,
  apiProjectsValidateLabelConfig,
  apiTokenBlacklistCreate,
  apiTokenCreate,
  apiTokenList,
  apiTokenRefreshCreate,
  apiTokenRotateCreate,
} from './generated/sdk.gen';
import type { Error as ApiError, Export, ExportCreateRequest } from './generated/types.gen';

const LABEL_CONFIG =
  '<View><Text name="text" value="$text"/>' +
  '<Choices name="sentiment" toName="text"><Choice value="pos"/><Choice value="neg"/></Choices></View>';
const TASK_COUNT = 3;

function check(condition: unknown, step: string, detail?: unknown): asserts condition {
  if (!condition) {
    throw new Error(`${step} failed${detail === undefined ? '' : `: ${JSON.stringify(detail)}`}`);
  }
}

function must<T>(value: T | undefined, step: string, error?: unknown): T {
  check(value !== undefined, step, error);
  return value;
}

const choice = (value: string) => ({
  from_name: 'sentiment',
  to_name: 'text',
  type: 'choices',
  value: { choices: [value] },
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor<T>(step: string, probe: () => Promise<T | undefined>, seconds = 60): Promise<T> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = await probe();
    if (value !== undefined) {
      return value;
    }
    check(Date.now() < deadline, `${step} (not done after ${seconds} s)`);
    await sleep(100);
  }
}

async function main(baseUrl: string, token: string): Promise<void> {
  const client = createClient({
    baseUrl,
    auth: (scheme) => (scheme.type === 'apiKey' ? `Token ${token}` : undefined),
  });

  // Projects: list, create (JSON defaults hold), patch, get.
  must((await apiProjectsList({ client })).data, 'list projects');
  const createdReply = await apiProjectsCreate({ client, body: { title: 'Generated client', label_config: LABEL_CONFIG } });
  const created = must(createdReply.data, 'create project', createdReply.error);
  check(created.show_skip_button === true && created.enable_empty_annotation === true, 'create: JSON defaults', created);
  const projectId = must(created.id, 'create: id');
  const patched = await apiProjectsPartialUpdate({
    client,
    path: { id: projectId },
    body: { description: 'made by a generated client' },
  });
  check(patched.data?.description === 'made by a generated client', 'patch project', patched.error);
  const fetched = await apiProjectsRetrieve({ client, path: { id: projectId } });
  check(fetched.data?.title === 'Generated client', 'get project', fetched.error);

  // Import tasks (a JSON list, annotations included) and predictions for them.
  const tasks = Array.from({ length: TASK_COUNT }, (_, n) => ({
    data: { text: `text ${n}` },
    annotations: [{ result: [choice(n % 2 ? 'pos' : 'neg')] }],
  }));
  const imported = await apiProjectsImportCreate({
    client,
    path: { id: projectId },
    query: { return_task_ids: true },
    body: tasks,
  });
  const importBody = must(imported.data, 'import tasks', imported.error);
  check(importBody.task_count === TASK_COUNT && importBody.annotation_count === TASK_COUNT, 'import counts', importBody);
  const taskIds = must(importBody.task_ids, 'import: task ids');
  const predicted = await apiProjectsImportPredictionsCreate({
    client,
    path: { id: projectId },
    body: taskIds.map((task) => ({ task, result: [choice('pos')], score: 0.5, model_version: 'v1' })),
  });
  check(predicted.data?.created === TASK_COUNT, 'import predictions', predicted.error);

  // Formats.
  const formats = must((await apiProjectsExportFormatsRetrieve({ client, path: { id: projectId } })).data, 'formats');
  const names = new Set(formats.map((format) => format.name));
  check(names.has('JSON') && names.has('CSV'), 'formats: JSON and CSV', [...names]);

  // A snapshot with every option family; the answer shows it as recorded.
  const request: ExportCreateRequest = {
    title: 'every option',
    task_filter_options: { annotated: 'only', only_with_annotations: true },
    annotation_filter_options: { usual: true, ground_truth: true, skipped: false },
    serialization_options: {
      drafts: { only_id: true },
      predictions: { only_id: false },
      annotations__completed_by: { only_id: true },
      include_annotation_history: false,
      interpolate_key_frames: false,
    },
  };
  const snapshotReply = await apiProjectsExportsCreate({ client, path: { id: projectId }, body: request });
  const snapshot = must(snapshotReply.data, 'create snapshot', snapshotReply.error);
  check(snapshot.status === 'created', 'create snapshot: status created', snapshot.status);
  const exportId = must(snapshot.id, 'create snapshot: id');
  const path = { id: projectId, export_pk: exportId };

  const done: Export = await waitFor('snapshot', async () => {
    const body = must((await apiProjectsExportsRetrieve({ client, path })).data, 'poll snapshot');
    check(body.status !== 'failed', 'snapshot failed', body);
    return body.status === 'completed' ? body : undefined;
  });
  const md5 = must(done.md5, 'snapshot md5');
  const counters = done.counters as { task_number?: number } | null | undefined;
  check(counters?.task_number === TASK_COUNT, 'snapshot counters', counters);

  // The same snapshot shortened and expanded.
  const short = must((await apiProjectsExportsRetrieve({ client, path, query: { fields: 'id,status' } })).data, 'fields');
  check(short.id === exportId && short.title === undefined && short.md5 === undefined, 'fields=id,status', short);
  const lean = must((await apiProjectsExportsRetrieve({ client, path, query: { omit: 'created_by' } })).data, 'omit');
  check(lean.created_by === undefined && lean.md5 === md5, 'omit=created_by', lean);
  const expanded = must((await apiProjectsExportsRetrieve({ client, path, query: { expand: 'project' } })).data, 'expand');
  check(expanded.project?.id === projectId, 'expand=project', expanded);

  const listed = must((await apiProjectsExportsList({ client, path: { id: projectId } })).data, 'list snapshots');
  check(listed.length === 1 && listed[0]?.id === exportId, 'list snapshots', listed);

  // Download: the bytes are the file the md5 names. The fetch client parses by the Content-Type the server sends
  // (a JSON file would arrive parsed); `parseAs: 'blob'` asks for the bytes. The schema documents a JSON file as
  // any JSON value, so the generated type is `unknown` and the Blob is named here.
  const file = await apiProjectsExportsDownloadRetrieve({ client, path, parseAs: 'blob' });
  const blob = must(file.data, 'download', file.error) as Blob;
  const bytes = Buffer.from(await blob.arrayBuffer());
  check(createHash('md5').update(bytes).digest('hex') === md5, 'download: md5');

  // Convert to CSV, wait, download it.
  const converted = await apiProjectsExportsConvertCreate({ client, path, body: { export_type: 'CSV' } });
  check(converted.data?.export_type === 'CSV', 'convert', converted.error);
  await waitFor('conversion', async () => {
    const body = must((await apiProjectsExportsRetrieve({ client, path })).data, 'poll conversion');
    const csv = (body.converted_formats ?? []).find((item) => item.export_type === 'CSV');
    check(csv?.status !== 'failed', 'conversion failed', csv);
    return csv?.status === 'completed' ? true : undefined;
  });
  const csvReply = await apiProjectsExportsDownloadRetrieve({
    client,
    path,
    query: { exportType: 'CSV' },
    parseAs: 'blob',
  });
  const csvText = await (must(csvReply.data, 'download CSV', csvReply.error) as Blob).text();
  const lines = csvText.trim().split('\n');
  check(lines.length === TASK_COUNT + 1 && (lines[0] ?? '').includes('sentiment'), 'CSV content', csvText.slice(0, 200));

  // Duplicate and validate.
  const copy = await apiProjectsDuplicateCreate({
    client,
    path: { id: projectId },
    body: { mode: 'settings,data', title: 'Generated copy' },
  });
  const copyId = must(copy.data, 'duplicate', copy.error).id;
  check(copyId !== projectId, 'duplicate: a new project');
  const valid = await apiProjectsValidateLabelConfig({
    client,
    path: { id: projectId },
    body: { label_config: LABEL_CONFIG },
  });
  must(valid.data, 'validate (project)', valid.error);
  const validated = await apiProjectsValidateCreate({ client, body: { label_config: LABEL_CONFIG } });
  check(validated.response.status === 204, 'validate', validated.response.status);
  const invalid = await apiProjectsValidateCreate({ client, body: { label_config: '<View>' } });
  check(invalid.error?.status_code === 400, 'validate: an invalid config', invalid.error);

  // Personal access tokens: create, list, refresh for an access token that works, rotate, blacklist.
  const refresh = must((await apiTokenCreate({ client })).data, 'token create').token;
  check((must((await apiTokenList({ client })).data, 'token list')).length >= 1, 'token list');
  const anonymous = createClient({ baseUrl });
  const access = await apiTokenRefreshCreate({ client: anonymous, body: { refresh } });
  const accessToken = must(access.data, 'token refresh', access.error).access;
  const bearer = createClient({ baseUrl, auth: (scheme) => (scheme.scheme === 'bearer' ? accessToken : undefined) });
  const viaBearer = await apiProjectsRetrieve({ client: bearer, path: { id: projectId } });
  check(viaBearer.data?.id === projectId, 'bearer access', viaBearer.error);
  const rotated = await apiTokenRotateCreate({ client, body: { refresh } });
  const newRefresh = must(rotated.data, 'token rotate', rotated.error).refresh;
  check(newRefresh !== refresh, 'token rotate: a new token');
  const blacklisted = await apiTokenBlacklistCreate({ client, body: { refresh: newRefresh } });
  check(blacklisted.response.status === 204, 'token blacklist', blacklisted.error);
  const refused = await apiTokenRefreshCreate({ client: anonymous, body: { refresh: newRefresh } });
  check(refused.error?.status_code === 401, 'refresh with a blacklisted token', refused.error);

  // A 404 parsed as the error model, naming what is missing.
  const missing = await apiProjectsExportsRetrieve({ client, path: { id: projectId, export_pk: 999999999 } });
  const missingError: ApiError = must(missing.error, 'missing snapshot: an error');
  check(missingError.status_code === 404 && missingError.detail === 'No Export matches the given query.', '404', missingError);
  const noProject = await apiProjectsExportsRetrieve({ client, path: { id: 999999999, export_pk: exportId } });
  check(noProject.error?.detail === 'No Project matches the given query.', 'missing project', noProject.error);

  console.log(`flow completed: project ${projectId}, copy ${copyId}, snapshot ${exportId}, md5 ${md5}`);
}

const [baseUrl, token] = process.argv.slice(2);
if (!baseUrl || !token) {
  console.error('usage: node dist/flow.js <base url> <API token>');
  process.exit(2);
}
main(baseUrl, token).catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
