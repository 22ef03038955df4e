// Which requests the gateway serves before fastify sees them: a table of URLs and methods with
// the model route they are (or none, so that fastify routes them and answers what is wrong).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseModelRoute } from '../../gateway/model-route.js';

describe('parseModelRoute', () => {
  const cases: [method: string, url: string, expected: ReturnType<typeof parseModelRoute>][] = [
    ['POST', '/v2/models/mlp/infer', { kind: 'infer', model: 'mlp', version: undefined }],
    ['POST', '/v2/models/mlp/versions/2/infer', { kind: 'infer', model: 'mlp', version: '2' }],
    ['GET', '/v2/models/mlp', { kind: 'metadata', model: 'mlp', version: undefined }],
    ['GET', '/v2/models/mlp/versions/2', { kind: 'metadata', model: 'mlp', version: '2' }],
    ['GET', '/v2/models/mlp/ready', { kind: 'ready', model: 'mlp', version: undefined }],
    ['GET', '/v2/models/mlp/versions/v1.0-rc_2/ready', { kind: 'ready', model: 'mlp', version: 'v1.0-rc_2' }],
    // A model may be called `versions`; a version may be called `infer` (fastify agrees).
    ['POST', '/v2/models/versions/infer', { kind: 'infer', model: 'versions', version: undefined }],
    ['GET', '/v2/models/mlp/versions/infer', { kind: 'metadata', model: 'mlp', version: 'infer' }],
    // Wrong method: fastify answers (404, as for every unknown route).
    ['GET', '/v2/models/mlp/infer', undefined],
    ['POST', '/v2/models/mlp', undefined],
    ['HEAD', '/v2/models/mlp', undefined],
    ['POST', '/v2/models/mlp/ready', undefined],
    // Anything that needs decoding or is not a model route: fastify's.
    ['POST', '/v2/models/ml%70/infer', undefined],
    ['POST', '/v2/models/mlp/infer?x=1', undefined],
    ['POST', '/v2/models//infer', undefined],
    ['POST', '/v2/models/mlp/infer/', undefined],
    ['POST', '/v2/models/mlp/versions/2/infer/x', undefined],
    ['GET', '/v2/models/mlp/versions', undefined],
    ['GET', '/v2/models', undefined],
    ['GET', '/v2/models/', undefined],
    ['GET', '/v2/health/ready', undefined],
    ['POST', `/v2/models/${'m'.repeat(257)}/infer`, undefined],
    ['POST', '/v2/models/mlp/versions/2/x/infer', undefined],
    ['POST', '/v2/models/ml\u00e9/infer', undefined],
    ['POST', '/v2/models/ml p/infer', undefined],
    ['POST', '/v2/models/ml+p/infer', undefined],
  ];
  for (const [method, url, expected] of cases) {
    test(`${method} ${url.length > 60 ? `${url.slice(0, 40)}...` : url}`, () => {
      assert.deepEqual(parseModelRoute(method, url), expected);
    });
  }
  test('a segment of 256 characters is still plain (fastify allows up to 256)', () => {
    assert.equal(parseModelRoute('POST', `/v2/models/${'m'.repeat(256)}/infer`)?.model.length, 256);
  });
});
