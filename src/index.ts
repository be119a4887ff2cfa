/**
 * snnl: the Soft Nearest Neighbor Loss on TensorFlow.js tensors, for Node: everything of the browser
 * entry (src/browser.ts), and the choice of compute engine (native LibTorch, or wasm with snnl's kernels).
 *
 *     import { snnl, useBackend } from 'snnl';
 */
export * from './browser.js';
export { useBackend, BACKENDS, type BackendChoice } from './engine/backend.js';
