/**
 * The routes that read or change the model repository: model metadata and readiness
 * (`GET /v2/models/{m}[/versions/{v}][/ready]`) and the repository extension
 * (`POST /v2/repository/index`, `POST /v2/repository/models/{m}/load|unload`).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../../common/errors.js';
import { parseJson } from '../../common/oip/json-scan.js';
import { BE_ERRORS } from '../errors.js';
import type { ModelRepository } from '../repository.js';

interface ModelParams {
  model: string;
  version?: string;
}

export function repositoryRoutes(api: FastifyInstance, repo: ModelRepository): void {
  const metadata = async (req: FastifyRequest<{ Params: ModelParams }>) => {
    const { model, version } = req.params;
    return repo.resolve(model, version).metadata(repo.versionsOf(model));
  };
  api.get('/v2/models/:model', metadata);
  api.get('/v2/models/:model/versions/:version', metadata);

  const ready = async (req: FastifyRequest<{ Params: ModelParams }>) => {
    const m = repo.resolve(req.params.model, req.params.version);
    return { name: m.name, version: m.version, ready: true };
  };
  api.get('/v2/models/:model/ready', ready);
  api.get('/v2/models/:model/versions/:version/ready', ready);

  api.post('/v2/repository/index', async (req: FastifyRequest<{ Body: Buffer | undefined }>) => {
    let readyOnly = false;
    if (req.body !== undefined && req.body.length > 0) {
      const doc = parseJson(req.body);
      if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
        throw new ApiError(BE_ERRORS.BE_ERR_INVALID_REQUEST, 'index request must be a JSON object');
      }
      const flag = (doc as { ready?: unknown }).ready;
      if (flag !== undefined && typeof flag !== 'boolean') {
        throw new ApiError(BE_ERRORS.BE_ERR_INVALID_REQUEST, 'ready must be a boolean', { field: 'ready' });
      }
      readyOnly = flag === true;
    }
    return repo.index(readyOnly);
  });
  api.post('/v2/repository/models/:model/load', async (req: FastifyRequest<{ Params: ModelParams }>) => {
    await repo.load(req.params.model);
    return {};
  });
  api.post('/v2/repository/models/:model/unload', async (req: FastifyRequest<{ Params: ModelParams }>) => {
    await repo.unload(req.params.model);
    return {};
  });
}
