/**
 * One training step of a GAN (src/models/gan.ts) with the non-saturating loss: the discriminator on a
 * batch of real images and a batch generated from one code, then the generator on a second code. The
 * codes are drawn from seeds, so a step can be replayed exactly (a resumed study).
 */
import * as tf from '@tensorflow/tfjs';
import { ganLosses, type Gan } from '../models/gan.js';

export interface GanStepResult {
  discriminatorLoss: number;
  generatorLoss: number;
}

const variablesOf = (model: tf.LayersModel) => model.trainableWeights.map((w) => w.read() as tf.Variable);

export function ganStep(
  gan: Gan,
  optimizers: { generator: tf.Optimizer; discriminator: tf.Optimizer },
  real: tf.Tensor,
  codeSize: number,
  seeds: [number, number],
): GanStepResult {
  const b = real.shape[0]!;
  // Generated in training mode, as the generator's own step does: batch normalization (the dcgan generator)
  // uses the batch's statistics; layers without it compute the same either way.
  const fake = tf.tidy(() => {
    const z = tf.randomNormal([b, codeSize], 0, 1, 'float32', seeds[0]);
    return gan.generator.apply(z, { training: true }) as tf.Tensor;
  });
  let dLoss: tf.Scalar;
  try {
    dLoss = optimizers.discriminator.minimize(
      () => {
        const [, , realLogit] = gan.discriminator.apply(real, { training: true }) as tf.Tensor[];
        const [, , fakeLogit] = gan.discriminator.apply(fake, { training: true }) as tf.Tensor[];
        return ganLosses.discriminator(realLogit!, fakeLogit!);
      },
      true,
      variablesOf(gan.discriminator),
    )!;
  } finally {
    fake.dispose();
  }
  const gLoss = optimizers.generator.minimize(
    () => {
      const z = tf.randomNormal([b, codeSize], 0, 1, 'float32', seeds[1]);
      const image = gan.generator.apply(z, { training: true }) as tf.Tensor;
      const [, , logit] = gan.discriminator.apply(image, { training: true }) as tf.Tensor[];
      return ganLosses.generator(logit!);
    },
    true,
    variablesOf(gan.generator),
  )!;
  const result = { discriminatorLoss: dLoss.dataSync()[0]!, generatorLoss: gLoss.dataSync()[0]! };
  tf.dispose([dLoss, gLoss]);
  return result;
}
