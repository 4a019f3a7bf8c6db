/**
 * The model variants edgeforge can build, by the names the gpu worker's quantization registry
 * uses (services/gpu-worker/edgeforge_gpu/quantization). Pure module: workflow code imports it.
 */
export const VARIANTS = [
  'fp32',
  'fp16',
  'int8_dynamic',
  'int8_static_minmax',
  'int8_static_entropy',
  'int8_static_percentile',
  'int8_static_reduce_range',
  'a16w8',
  'int4_weight_only',
] as const;

export type VariantName = (typeof VARIANTS)[number];
