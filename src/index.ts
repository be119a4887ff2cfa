/**
 * snnl: the Soft Nearest Neighbor Loss on TensorFlow.js tensors.
 *
 *     import { snnl } from 'snnl';
 */
export * from './loss/index.js';
export { InputError } from './errors.js';
export { useBackend, BACKENDS, type BackendChoice } from './engine/backend.js';
