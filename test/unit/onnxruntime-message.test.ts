// onnxruntime's messages reach clients in BE_ERR_INFERENCE_REJECTED answers: without the source
// locations and C++ signatures they carry (docs/errors.md: messages never contain file paths).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { onnxruntimeMessage } from '../../backend/errors.js';

const CASES: [string, string][] = [
  [
    "Non-zero status code returned while running Reshape node. Name:'Reshape_token_34' Status Message: /onnxruntime_src/onnxruntime/core/providers/cpu/tensor/reshape_helper.h:84 onnxruntime::ReshapeHelper::ReshapeHelper(const onnxruntime::TensorShape&, onnxruntime::TensorShapeVector&, bool) size != 0 && (input_shape_size % size) == 0 was false. The input tensor cannot be reshaped to the requested shape. Input shape:{0,16,6,96}, requested shape:{0,-1,6,96,16}\n",
    "Non-zero status code returned while running Reshape node. Name:'Reshape_token_34' Status Message: size != 0 && (input_shape_size % size) == 0 was false. The input tensor cannot be reshaped to the requested shape. Input shape:{0,16,6,96}, requested shape:{0,-1,6,96,16}",
  ],
  [
    '/onnxruntime_src/onnxruntime/core/providers/webgpu/webgpu_context.cc:136 onnxruntime::webgpu::WebGpuContext::Initialize(const onnxruntime::webgpu::WebGpuContextConfig&)::<lambda()> adapter_result.status == wgpu::RequestAdapterStatus::Success was false. Failed to get a WebGPU adapter: No supported adapters',
    'adapter_result.status == wgpu::RequestAdapterStatus::Success was false. Failed to get a WebGPU adapter: No supported adapters',
  ],
  [
    'D:\\a\\_work\\1\\s\\onnxruntime\\core\\framework\\execution_frame.cc:42 bad thing happened',
    'bad thing happened',
  ],
  [
    "Non-zero status code returned while running Conv node. Name:'conv_0' Status Message: Invalid input shape: {48,0}",
    "Non-zero status code returned while running Conv node. Name:'conv_0' Status Message: Invalid input shape: {48,0}",
  ],
];

for (const [raw, expected] of CASES) {
  test(`onnxruntimeMessage: ${expected.slice(0, 60)}`, () => {
    assert.equal(onnxruntimeMessage(raw), expected);
  });
}

test('onnxruntimeMessage bounds a long message', () => {
  const out = onnxruntimeMessage(`shape ${'{1,2,3}'.repeat(500)}`);
  assert.equal(out.length, 503);
  assert.ok(out.endsWith('...'), out.slice(-10));
});
