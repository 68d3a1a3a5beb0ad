import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
await tf.setBackend('wasm');
for (const opt of ['sgd','adam','rmsprop','adagrad','adadelta','adamax','momentum']) {
  const m = tf.sequential({layers:[tf.layers.dense({inputShape:[4],units:3,activation:'softmax'})]});
  const o = opt==='momentum'? tf.train.momentum(0.1,0.9) : opt;
  for (const loss of ['categoricalCrossentropy','sparseCategoricalCrossentropy','meanSquaredError','binaryCrossentropy','hinge','kullbackLeiblerDivergence','poisson','logcosh','meanSquaredLogarithmicError','meanAbsolutePercentageError','squaredHinge','cosineProximity']) {
    m.compile({optimizer:o, loss, metrics:['accuracy']});
    const y = loss.startsWith('sparse') ? tf.tensor([[0],[1]]) : tf.tensor([[1,0,0],[0,1,0]]);
    try { await m.fit(tf.ones([2,4]), y, {epochs:1, verbose:0}); } catch(e) { console.log(opt, loss, 'ERR', e.message.slice(0,100)); }
  }
}
console.log('fit done');
