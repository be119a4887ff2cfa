/**
 * `file://` save and load for tfjs models in Node, without tfjs-node: `model.save('file://./my-model')`
 * writes my-model/model.json and my-model/weights.bin; `tf.loadLayersModel('file://./my-model/model.json')`
 * (or the folder) reads them back. The Node entry registers the routers when it is imported; `fileSystem`
 * is the handler itself, for a path without the scheme. The files are tfjs's own layout (tfjs-node and
 * the tfjs converter read and write the same).
 */
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.js';
import { writeAtomic } from './atomic.js';

export const FILE_SCHEME = 'file://';
const MODEL_JSON = 'model.json';
const WEIGHTS_BIN = 'weights.bin';

function readBytes(path: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new InputError(path, `cannot read it: ${(error as Error).message}`);
  }
}

/** The model.json a load path names: the file itself, or model.json inside a folder. */
function modelJsonPath(path: string): string {
  const full = resolve(path);
  if (existsSync(full) && statSync(full).isDirectory()) return join(full, MODEL_JSON);
  return full;
}

/** The whole weight data as one ArrayBuffer (tfjs may hand it over in pieces). */
function weightBytes(data: tf.io.WeightData | undefined): Uint8Array {
  if (data === undefined) return new Uint8Array(0);
  return new Uint8Array(tf.io.CompositeArrayBuffer.join(data));
}

/**
 * The IO handler of a folder (save: created if missing; model.json and weights.bin written atomically,
 * weights first) or of a model.json or its folder (load).
 */
export function fileSystem(path: string): tf.io.IOHandler {
  return {
    async save(artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> {
      if (artifacts.modelTopology instanceof ArrayBuffer)
        throw new InputError(path, 'file:// saves models with a JSON topology (tf.LayersModel), not a binary graph');
      const dir = resolve(path);
      if (existsSync(dir) && !statSync(dir).isDirectory())
        throw new InputError(path, 'is a file; file:// saves into a folder (model.json and weights.bin)');
      mkdirSync(dir, { recursive: true });
      const manifest: tf.io.WeightsManifestConfig = [{ paths: [WEIGHTS_BIN], weights: artifacts.weightSpecs ?? [] }];
      writeAtomic(join(dir, WEIGHTS_BIN), weightBytes(artifacts.weightData));
      const json: tf.io.ModelJSON = {
        modelTopology: artifacts.modelTopology!,
        weightsManifest: manifest,
        ...(artifacts.format !== undefined ? { format: artifacts.format } : {}),
        ...(artifacts.generatedBy !== undefined ? { generatedBy: artifacts.generatedBy } : {}),
        ...(artifacts.convertedBy !== undefined ? { convertedBy: artifacts.convertedBy } : {}),
        ...(artifacts.trainingConfig !== undefined ? { trainingConfig: artifacts.trainingConfig } : {}),
        ...(artifacts.signature !== undefined ? { signature: artifacts.signature } : {}),
        ...(artifacts.userDefinedMetadata !== undefined ? { userDefinedMetadata: artifacts.userDefinedMetadata } : {}),
        ...(artifacts.modelInitializer !== undefined ? { modelInitializer: artifacts.modelInitializer } : {}),
      };
      writeAtomic(join(dir, MODEL_JSON), JSON.stringify(json));
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    },

    async load(): Promise<tf.io.ModelArtifacts> {
      const file = modelJsonPath(path);
      let json: tf.io.ModelJSON;
      try {
        json = JSON.parse(new TextDecoder().decode(readBytes(file))) as tf.io.ModelJSON;
      } catch (error) {
        if (error instanceof InputError) throw error;
        throw new InputError(file, `is not JSON: ${(error as Error).message}`);
      }
      if (typeof json !== 'object' || json === null || json.modelTopology === undefined)
        throw new InputError(file, 'has no modelTopology: expected a tfjs model.json');
      return tf.io.getModelArtifactsForJSON(json, async (manifest) => {
        const buffers = manifest.flatMap((group) =>
          group.paths.map((p) => {
            const bytes = readBytes(join(dirname(file), p));
            return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
          }),
        );
        return [tf.io.getWeightSpecs(manifest), tf.io.concatenateArrayBuffers(buffers)];
      });
    },
  };
}

/** The path after file://, or null for another scheme (tfjs's routers hand every URL to every router). */
function filePath(url: string | string[]): string | null {
  if (Array.isArray(url)) return url.length === 1 ? filePath(url[0]!) : null;
  return url.startsWith(FILE_SCHEME) ? url.slice(FILE_SCHEME.length) : null;
}

let registered = false;

/** Registers file:// for tf.LayersModel.save and tf.loadLayersModel (once per process). */
export function registerFileSystemRouters(): void {
  if (registered) return;
  registered = true;
  type Router = Parameters<typeof tf.io.registerSaveRouter>[0];
  // tfjs asks every router about every URL; null means "not mine" (its own routers do the same).
  const router = ((url: string | string[]) => {
    const path = filePath(url);
    return path === null ? null : fileSystem(path);
  }) as Router;
  tf.io.registerSaveRouter(router);
  tf.io.registerLoadRouter(router);
}
