/**
 * The overhead baseline of `npm run bench:backend`: a bare fastify route that only parses the
 * same JSON body as the backend's `simple` model and answers a fixed reply of the same shape.
 */
import Fastify from 'fastify';
import { simpleAnswer as reply } from './common.js';

const app = Fastify({ logger: false });
app.post('/v2/models/simple/infer', async (req, res) => {
  if (typeof req.body !== 'object' || req.body === null) throw new Error('no body');
  return res.type('application/json').send(reply);
});
const address = await app.listen({ host: '127.0.0.1', port: 0 });
process.stdout.write(`bare fastify listening on ${address}\n`);
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
