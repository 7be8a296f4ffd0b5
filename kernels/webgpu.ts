/**
 * Running Earshot's WGSL programs on the tfjs WebGPU backend.
 *
 * A program is data (tfjs-backend-webgpu's `WebGPUProgram`): `shaderKey`, `workgroupSize`,
 * `dispatchLayout`/`dispatch`, `uniforms` and `getUserCode()` returning WGSL. The backend
 * prepends the bindings (`result`, one `array<…>` per `variableNames` entry, `uniforms`),
 * compiles once per shader key and records the dispatch into its command encoder, so our
 * kernels interleave with tfjs's own ops in the same submit.
 *
 * Every program here reads its inputs and writes `result` by flat index; shapes reach the
 * shader through `programUniforms`, never through the generated getters, so one compiled
 * pipeline serves every shape of the same kind.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { WebGPUBackend, WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';

export type { WebGPUProgram };

/** One program-defined uniform value, in the order of the program's `uniforms` string. */
export type ProgramUniform = { type: 'int32' | 'float32' | 'uint32'; data: number[] };

/** The current backend as the WebGPU backend, or null when another backend is active. */
export function webgpuBackend(): WebGPUBackend | null {
  return tf.getBackend() === 'webgpu' ? (tf.backend() as unknown as WebGPUBackend) : null;
}

/**
 * Program uniforms as separate scalar fields (`a : i32, b : i32, …`): the backend aligns each
 * entry by its length (a 3-vector to 16 bytes), so fields must be passed one value at a time.
 */
export function i32s(...values: number[]): ProgramUniform[] {
  return values.map((v) => ({ type: 'int32', data: [v] }));
}

/** Runs a program on tensors and wraps the result as a tensor tracked by the engine (tidy-safe). */
export function runProgram<R extends tf.Rank>(program: WebGPUProgram, inputs: tf.Tensor[], uniforms: ProgramUniform[], dtype: tf.DataType = 'float32'): tf.Tensor<R> {
  const backend = webgpuBackend();
  if (!backend) throw new Error(`${program.shaderKey}: a WebGPU kernel was called while the backend is ${tf.getBackend()}`);
  const info = backend.runWebGPUProgram(program, inputs, dtype, uniforms);
  return tf.engine().makeTensorFromTensorInfo(info) as tf.Tensor<R>;
}

/**
 * Runs a program that writes into an existing tensor in place (the preallocated KV cache).
 * The caller owns `target` and must not share it with tensors that expect it immutable.
 */
export function runProgramInto(program: WebGPUProgram, inputs: tf.Tensor[], uniforms: ProgramUniform[], target: tf.Tensor): void {
  const backend = webgpuBackend();
  if (!backend) throw new Error(`${program.shaderKey}: a WebGPU kernel was called while the backend is ${tf.getBackend()}`);
  backend.runWebGPUProgram(program, inputs, target.dtype, uniforms, { dataId: target.dataId, shape: target.shape, dtype: target.dtype });
}

/** Workgroup counts for `n` items of `perGroup` each along x, folded into y when x would exceed the limit. */
export function dispatch1D(n: number, perGroup: number): [number, number, number] {
  const groups = Math.max(1, Math.ceil(n / perGroup));
  const maxX = 65535;
  return groups <= maxX ? [groups, 1, 1] : [maxX, Math.ceil(groups / maxX), 1];
}

/**
 * Exact GELU in WGSL, 0.5·x·(1 + erf(x/√2)) as torch.nn.GELU(). WGSL has no erf: this is
 * Abramowitz–Stegun 7.1.26 (|error| ≤ 1.5e-7), the same formula tfjs's own Erf kernels use,
 * so the two kernel paths agree to float32 rounding.
 */
export const GELU_WGSL = /* wgsl */ `
fn erf_f32(x : f32) -> f32 {
  let p = 0.3275911;
  let a1 = 0.254829592;
  let a2 = -0.284496736;
  let a3 = 1.421413741;
  let a4 = -1.453152027;
  let a5 = 1.061405429;
  let s = sign(x);
  let ax = abs(x);
  let t = 1.0 / (1.0 + p * ax);
  return s * (1.0 - (((((a5 * t + a4) * t) + a3) * t + a2) * t + a1) * t * exp(-ax * ax));
}
fn gelu_f32(x : f32) -> f32 {
  return 0.5 * x * (1.0 + erf_f32(x * 0.7071067811865476));
}
fn gelu4(v : vec4<f32>) -> vec4<f32> {
  return vec4<f32>(gelu_f32(v.x), gelu_f32(v.y), gelu_f32(v.z), gelu_f32(v.w));
}
`;
