// Run in the image build (Dockerfile, Dockerfile.gpu) after `npm ci --omit=dev`: onnxruntime-node
// ships its native binaries for every platform (about 290 MB); keep this platform's only (about
// 45 MB on linux/x64). Exits 1 when this platform's are missing, so a broken install fails the build.
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const root = join(process.argv[2] ?? 'node_modules', 'onnxruntime-node', 'bin', 'napi-v6');
const keep = join(root, process.platform, process.arch);
if (!existsSync(join(keep, 'onnxruntime_binding.node'))) {
  process.stderr.write(`${keep}/onnxruntime_binding.node is missing\n`);
  process.exit(1);
}
for (const os of readdirSync(root)) {
  for (const arch of readdirSync(join(root, os))) {
    const dir = join(root, os, arch);
    if (dir !== keep) rmSync(dir, { recursive: true, force: true });
  }
  if (os !== process.platform) rmSync(join(root, os), { recursive: true, force: true });
}
