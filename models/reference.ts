// Plain TypeScript reference implementations of the sample models, and the weight generators that
// build.ts bakes into the ONNX files: this module is the single source of truth for the weights.

export interface DenseLayer {
  inputs: number;
  outputs: number;
  /** Row-major [inputs, outputs], ready for ONNX MatMul(x, W). */
  weight: Float32Array;
  bias: Float32Array;
}

export type MlpVersion = '1' | '2';

export const MLP_DIMS: readonly number[] = [64, 128, 10];
export const MLP_LARGE_DIMS: readonly number[] = [512, 2048, 2048, 10];

const MLP_SEEDS: Record<MlpVersion, number> = { '1': 0x1f2e3d01, '2': 0x1f2e3d02 };
const MLP_LARGE_SEED = 0x5eed0001;

/** mulberry32: a tiny, well-distributed 32-bit PRNG; returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function uniform(next: () => number, count: number, bound: number): Float32Array {
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = (next() * 2 - 1) * bound;
  return out;
}

// He-uniform weights (±sqrt(6/fan_in)) keep the activations' second moment constant through each
// ReLU, so even the 3-layer mlp-large produces O(1) outputs instead of shrinking layer by layer.
function generateLayers(seed: number, dims: readonly number[]): DenseLayer[] {
  const next = mulberry32(seed);
  const layers: DenseLayer[] = [];
  for (let i = 0; i + 1 < dims.length; i++) {
    const inputs = dims[i]!;
    const outputs = dims[i + 1]!;
    const weight = uniform(next, inputs * outputs, Math.sqrt(6 / inputs));
    const bias = uniform(next, outputs, 1 / Math.sqrt(inputs));
    layers.push({ inputs, outputs, weight, bias });
  }
  return layers;
}

// mlp-large has ~5M weights; generating them once per process keeps tests and builds fast.
const layerCache = new Map<string, DenseLayer[]>();

/** Deterministic dense layers for `dims`; the returned arrays are shared, treat them as read-only. */
export function denseLayers(seed: number, dims: readonly number[]): DenseLayer[] {
  const key = `${seed}:${dims.join(',')}`;
  let layers = layerCache.get(key);
  if (!layers) {
    layers = generateLayers(seed, dims);
    layerCache.set(key, layers);
  }
  return layers;
}

export function mlpLayers(version: MlpVersion): DenseLayer[] {
  return denseLayers(MLP_SEEDS[version], MLP_DIMS);
}

export function mlpLargeLayers(): DenseLayer[] {
  return denseLayers(MLP_LARGE_SEED, MLP_LARGE_DIMS);
}

export function mlpWeights(version: MlpVersion): {
  w1: Float32Array;
  b1: Float32Array;
  w2: Float32Array;
  b2: Float32Array;
  dims: number[];
} {
  const [first, second] = mlpLayers(version);
  if (!first || !second) throw new Error('mlp must have exactly two layers');
  return { w1: first.weight, b1: first.bias, w2: second.weight, b2: second.bias, dims: [...MLP_DIMS] };
}

function denseForward(layer: DenseLayer, input: Float64Array, batch: number, relu: boolean): Float64Array {
  const { inputs, outputs, weight, bias } = layer;
  const out = new Float64Array(batch * outputs);
  for (let b = 0; b < batch; b++) {
    const row = b * outputs;
    for (let j = 0; j < outputs; j++) out[row + j] = bias[j]!;
    for (let i = 0; i < inputs; i++) {
      const xi = input[b * inputs + i]!;
      if (xi === 0) continue;
      const wRow = i * outputs;
      for (let j = 0; j < outputs; j++) out[row + j]! += xi * weight[wRow + j]!;
    }
    if (relu) for (let j = 0; j < outputs; j++) out[row + j] = Math.max(0, out[row + j]!);
  }
  return out;
}

/** Runs MatMul+bias layers with ReLU between them (none after the last), accumulating in float64. */
export function denseStackReference(
  layers: readonly DenseLayer[],
  x: Float32Array,
  batch: number,
): Float32Array {
  const first = layers[0];
  if (!first) throw new Error('no layers');
  if (x.length !== batch * first.inputs) {
    throw new Error(`expected ${batch}x${first.inputs} = ${batch * first.inputs} values, got ${x.length}`);
  }
  let act: Float64Array = Float64Array.from(x);
  layers.forEach((layer, i) => {
    act = denseForward(layer, act, batch, i + 1 < layers.length);
  });
  return Float32Array.from(act);
}

/** `mlp` reference: x [batch,64] -> y [batch,10]. */
export function mlpReference(version: MlpVersion, x: Float32Array, batch: number): Float32Array {
  return denseStackReference(mlpLayers(version), x, batch);
}

/** `mlp-large` reference: x [batch,512] -> y [batch,10]. */
export function mlpLargeReference(x: Float32Array, batch: number): Float32Array {
  return denseStackReference(mlpLargeLayers(), x, batch);
}

/** `simple` reference: element-wise sum and difference with int32 wrap-around, as onnxruntime does. */
export function simpleReference(a: Int32Array, b: Int32Array): { sum: Int32Array; diff: Int32Array } {
  if (a.length !== b.length) throw new Error(`length mismatch: ${a.length} vs ${b.length}`);
  const sum = new Int32Array(a.length);
  const diff = new Int32Array(a.length);
  for (let i = 0; i < a.length; i++) {
    sum[i] = (a[i]! + b[i]!) | 0;
    diff[i] = (a[i]! - b[i]!) | 0;
  }
  return { sum, diff };
}
