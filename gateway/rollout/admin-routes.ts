/**
 * The admin routes of rollouts: `GET /admin/shadow`, `GET /admin/canary`, and the operator's
 * commands `POST /admin/canary/{model}/{pause|resume|abort|promote}`.
 */
import type { FastifyInstance } from 'fastify';
import { ApiError } from '../../common/errors.js';
import { sendApiError } from '../../common/http.js';
import { GW_ERRORS } from '../errors.js';
import { CANARY_COMMANDS, type CanaryCommand } from './canary.js';
import type { Rollouts } from './rollouts.js';

export function rolloutRoutes(admin: FastifyInstance, rollouts: Rollouts): void {
  admin.get('/admin/shadow', async () => rollouts.shadowView());
  admin.get('/admin/canary', async () => rollouts.canaryView());
  admin.get<{ Params: { model: string } }>('/admin/canary/:model', async (req, reply) => {
    const c = rollouts.canary(req.params.model);
    if (c === undefined) {
      return sendApiError(
        reply,
        new ApiError(
          GW_ERRORS.GW_ERR_NOT_FOUND,
          `no canary rollout for model '${req.params.model.slice(0, 256)}'`,
        ),
      );
    }
    return c.view();
  });
  admin.post<{ Params: { model: string; command: string } }>(
    '/admin/canary/:model/:command',
    async (req, reply) => {
      const cmd = req.params.command as CanaryCommand;
      if (!CANARY_COMMANDS.includes(cmd)) {
        return sendApiError(
          reply,
          new ApiError(GW_ERRORS.GW_ERR_NOT_FOUND, `no canary command '${req.params.command.slice(0, 64)}'`),
        );
      }
      const r = rollouts.command(req.params.model, cmd);
      if (!r.ok) {
        return sendApiError(
          reply,
          new ApiError(r.notFound ? GW_ERRORS.GW_ERR_NOT_FOUND : GW_ERRORS.GW_ERR_BAD_REQUEST, r.message),
        );
      }
      return rollouts.canary(req.params.model)?.view();
    },
  );
}
