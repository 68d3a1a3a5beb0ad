import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
const cases = {
  dense: () => [tf.layers.dense({inputShape:[8], units:4, activation:'relu'})], 
  conv2d: () => [tf.layers.conv2d({inputShape:[8,8,3], filters:4, kernelSize:3, strides:2, padding:'same'}), tf.layers.flatten()],
  depthwise: () => [tf.layers.depthwiseConv2d({inputShape:[8,8,3], kernelSize:3, depthMultiplier:2}), tf.layers.flatten()],
  separable: () => [tf.layers.separableConv2d({inputShape:[8,8,3], filters:4, kernelSize:3}), tf.layers.flatten()],
  maxpool: () => [tf.layers.dense({inputShape:[8,8,3], units:4}), tf.layers.maxPooling2d({poolSize:2}), tf.layers.flatten()],
  avgpool: () => [tf.layers.dense({inputShape:[8,8,3], units:4}), tf.layers.averagePooling2d({poolSize:3, strides:2, padding:'same'}), tf.layers.flatten()],
  gap: () => [tf.layers.dense({inputShape:[8,8,3], units:4}), tf.layers.globalAveragePooling2d({}), tf.layers.flatten()],
  gmp: () => [tf.layers.dense({inputShape:[8,8,3], units:4}), tf.layers.globalMaxPooling2d({}), tf.layers.flatten()],
  bn: () => [tf.layers.dense({inputShape:[8], units:4}), tf.layers.batchNormalization()],
  bn4d: () => [tf.layers.conv2d({inputShape:[8,8,3], filters:4, kernelSize:3}), tf.layers.batchNormalization(), tf.layers.flatten()],
  ln: () => [tf.layers.dense({inputShape:[8], units:4}), tf.layers.layerNormalization()],
  dropout: () => [tf.layers.dense({inputShape:[8], units:4}), tf.layers.dropout({rate:0.5})],
  embedding: () => [tf.layers.embedding({inputShape:[5], inputDim:10, outputDim:4}), tf.layers.flatten()],
  simplernn: () => [tf.layers.simpleRNN({inputShape:[5,3], units:4})],
  lstm: () => [tf.layers.lstm({inputShape:[5,3], units:4})],
  gru: () => [tf.layers.gru({inputShape:[5,3], units:4})],
  conv1d: () => [tf.layers.conv1d({inputShape:[8,3], filters:4, kernelSize:3}), tf.layers.flatten()],
  upsample: () => [tf.layers.dense({inputShape:[8,8,3], units:4}), tf.layers.upSampling2d({}), tf.layers.flatten()],
  conv2dT: () => [tf.layers.conv2dTranspose({inputShape:[4,4,3], filters:2, kernelSize:3, strides:2}), tf.layers.flatten()],
  ...Object.fromEntries(['relu','relu6','elu','selu','sigmoid','tanh','softmax','softplus','softsign','hardSigmoid','swish','mish','gelu','linear'].map(a=>[a, ()=>[tf.layers.dense({inputShape:[8], units:4, activation:a})]])),
  leakyRelu: () => [tf.layers.dense({inputShape:[8], units:4}), tf.layers.leakyReLU()],
  prelu: () => [tf.layers.dense({inputShape:[8], units:4}), tf.layers.prelu()],
  eluLayer: () => [tf.layers.dense({inputShape:[8], units:4}), tf.layers.elu()],
};
const losses = ['meanSquaredError','categoricalCrossentropy','sparseCategoricalCrossentropy','binaryCrossentropy','meanAbsoluteError','huberLoss','logLoss','cosineProximity','softmaxCE','sigmoidCE'];
async function run(backend, name, mk) {
  await tf.setBackend(backend);
  tf.util.seedrandom?.(1);
  const layers = mk();
  const model = tf.sequential({layers});
  // deterministic weights
  model.weights.forEach((w, i) => { const v = w.read(); w.write(tf.tensor(Array.from({length: v.size}, (_, k) => Math.sin(k*0.37 + i)*0.5), v.shape)); });
  const inShape = [2, ...model.inputs[0].shape.slice(1)];
  const n = inShape.reduce((a,b)=>a*b,1);
  const x = name === 'embedding' ? tf.tensor(Array.from({length:n},(_,k)=>(k*3)%10), inShape, 'int32') : tf.tensor(Array.from({length:n},(_,k)=>Math.cos(k*0.13)), inShape);
  const {value, grads} = tf.variableGrads(() => { const y = model.apply(x, {training: name!=='dropout'}); return tf.mean(tf.square(y)); });
  const out = Object.values(grads).map(g => Array.from(g.dataSync()));
  return out;
}
for (const [name, mk] of Object.entries(cases)) {
  let res = {};
  for (const b of ['cpu','wasm']) {
    try { res[b] = await run(b, name, mk); } catch (e) { res[b] = 'ERR ' + e.message.slice(0,100); }
  }
  let diff = '';
  if (Array.isArray(res.cpu) && Array.isArray(res.wasm)) { let m=0, mx=0; res.cpu.forEach((g,i)=>g.forEach((v,j)=>{m=Math.max(m,Math.abs(v-res.wasm[i][j])); mx=Math.max(mx,Math.abs(v));})); diff = `maxdiff ${m.toExponential(2)} rel ${(m/mx).toExponential(2)}`; }
  console.log(name.padEnd(12), typeof res.wasm === 'string' ? res.wasm : 'ok', typeof res.cpu === 'string' ? 'CPU '+res.cpu : '', diff);
}
// losses
for (const l of losses) {
  for (const b of ['wasm']) {
    await tf.setBackend(b);
    try {
      const w = tf.variable(tf.tensor([[0.1,0.2,-0.3],[0.4,-0.5,0.6]]));
      const yTrue = tf.tensor([[0,1,0],[1,0,0]]);
      const g = tf.variableGrads(() => {
        const p = tf.softmax(w);
        if (l === 'softmaxCE') return tf.losses.softmaxCrossEntropy(yTrue, w);
        if (l === 'sigmoidCE') return tf.losses.sigmoidCrossEntropy(yTrue, w);
        if (l === 'sparseCategoricalCrossentropy') return tf.mean(tf.metrics.sparseCategoricalCrossentropy(tf.tensor([1,0]), p));
        if (l === 'huberLoss') return tf.losses.huberLoss(yTrue, w);
        if (l === 'logLoss') return tf.losses.logLoss(yTrue, p);
        return tf.mean(tf.metrics[l] ? tf.metrics[l](yTrue, p) : tf.losses[l](yTrue, p));
      });
      g.grads[Object.keys(g.grads)[0]].dataSync();
      console.log('loss', l, 'ok');
    } catch (e) { console.log('loss', l, 'ERR', e.message.slice(0,100)); }
  }
}
