// The one place that imports TensorFlow.js for shared code, so every module uses the same engine.
export * as tf from '@tensorflow/tfjs';
