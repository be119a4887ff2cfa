/** What the demo page publishes as `window.demo`, for its test (and for anyone watching it run). */
export interface DemoState {
  backend: string;
  toySteps: number;
  /** Training steps done, per run. */
  steps: Record<string, number>;
  /** Probe accuracy at each measurement, per run. */
  accuracy: Record<string, number[]>;
  /** Optimal-temperature SNNL of each hidden layer at each measurement, per run. */
  entanglement: Record<string, Record<string, number[]>>;
  done: boolean;
  error?: string;
}
