import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  allocTyped,
  allocTypedSmall,
  DATATYPE_INFO,
  DATATYPES,
  type Datatype,
  SMALL_MAX_BYTES,
  SMALL_SLAB_BYTES,
  type TypedArray,
} from '../../common/oip/datatypes.js';

const FIXED = DATATYPES.filter((d) => d !== 'BYTES');

describe('allocTyped', () => {
  test('each fixed-size datatype gets its typed array, zero-filled, of n elements', () => {
    for (const dt of FIXED) {
      const a = allocTyped(dt, 5);
      assert.equal(a.length, 5, dt);
      assert.equal(a.BYTES_PER_ELEMENT, DATATYPE_INFO[dt].size, dt);
      assert.ok(
        [...a].every((v) => v === 0 || v === 0n),
        dt,
      );
    }
  });

  test('BYTES has no typed array', () => {
    assert.throws(() => allocTyped('BYTES', 1), /BYTES/);
    assert.throws(() => allocTypedSmall('BYTES', 1), /BYTES/);
  });
});

describe('allocTypedSmall', () => {
  test('small arrays are aligned, zero-filled views into one slab that never overlap', () => {
    const views: { dt: Datatype; a: TypedArray }[] = [];
    // Odd sizes of every type, so that the next view's offset needs rounding up.
    for (let i = 0; i < 60; i++) {
      const dt = FIXED[i % FIXED.length]!;
      const a = allocTypedSmall(dt, 1 + ((i * 7) % 13));
      assert.equal(a.byteOffset % 8, 0, `${dt} view at ${a.byteOffset}`);
      assert.ok(
        [...a].every((v) => v === 0 || v === 0n),
        `${dt} is zero-filled`,
      );
      views.push({ dt, a });
    }
    const shared = views.filter((v) => v.a.buffer.byteLength === SMALL_SLAB_BYTES);
    assert.ok(shared.length >= 30, 'most views share a slab');
    // Fill each view with its own byte; every view must still hold only its byte afterwards.
    views.forEach((v, i) => {
      new Uint8Array(v.a.buffer, v.a.byteOffset, v.a.byteLength).fill(i + 1);
    });
    views.forEach((v, i) => {
      const bytes = new Uint8Array(v.a.buffer, v.a.byteOffset, v.a.byteLength);
      assert.ok(
        bytes.every((b) => b === i + 1),
        `view ${i} (${v.dt}) was overwritten by another`,
      );
    });
  });

  test('a full slab is left for a new one; arrays past SMALL_MAX_BYTES own their buffer', () => {
    const first = allocTypedSmall('UINT8', SMALL_MAX_BYTES);
    const buffers = new Set<ArrayBufferLike>([first.buffer]);
    for (let i = 0; i < (2 * SMALL_SLAB_BYTES) / SMALL_MAX_BYTES; i++) {
      buffers.add(allocTypedSmall('UINT8', SMALL_MAX_BYTES).buffer);
    }
    assert.ok(buffers.size >= 2, 'a new slab once one is full');
    const big = allocTypedSmall('FP32', SMALL_MAX_BYTES / 4 + 1);
    assert.equal(big.byteOffset, 0);
    assert.equal(big.buffer.byteLength, big.byteLength, 'an array past the limit owns its buffer');
    const empty = allocTypedSmall('FP64', 0);
    assert.equal(empty.length, 0);
  });
});
