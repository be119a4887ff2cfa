/**
 * snnl: the Soft Nearest Neighbor Loss on TensorFlow.js tensors, for Node: everything of the browser
 * entry (src/browser.ts), the choice of compute engine (native LibTorch, or wasm with snnl's kernels),
 * and `file://` save and load of tfjs models (registered on import; tfjs-node is not needed).
 *
 *     import { snnl, useBackend } from 'snnl';
 *     await model.save('file://./my-model');
 *     const again = await tf.loadLayersModel('file://./my-model/model.json');
 */
import { registerFileSystemRouters } from './io/file-system.js';

export * from './browser.js';
export { useBackend, BACKENDS, type BackendChoice } from './engine/backend.js';
export { fileSystem, registerFileSystemRouters, FILE_SCHEME } from './io/file-system.js';

registerFileSystemRouters();
