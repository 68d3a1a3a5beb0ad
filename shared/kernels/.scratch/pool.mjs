import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
await tf.setBackend('cpu');
const xv = tf.tensor(Array.from({length:2*9*7*3},(_,k)=>Math.cos(k*1.13)), [2,9,7,3]).arraySync();
for (const op of ['max','avg']) for (const [f,s,p] of [[2,2,'valid'],[3,1,'same'],[3,2,'same'],[3,2,'valid'],[2,1,'valid'],[[3,2],[2,1],'same']]) {
  const r = {};
  for (const b of ['cpu','wasm']) {
    await tf.setBackend(b); const x = tf.tensor(xv);
    const fn = x => (op==='max'? tf.maxPool(x,f,s,p): tf.avgPool(x,f,s,p));
    const y = fn(x);
    const dy = tf.tensor(Array.from({length:y.size},(_,k)=>Math.sin(k*0.7)), y.shape);
    r[b] = tf.grad(fn)(x, dy).dataSync().slice();
  }
  let m=0; r.cpu.forEach((v,i)=>m=Math.max(m,Math.abs(v-r.wasm[i])));
  console.log(op,f,s,p,'maxdiff',m);
}
for (const L of ['globalAveragePooling2d','globalMaxPooling2d','globalAveragePooling1d','globalMaxPooling1d']) {
  const r = {};
  for (const b of ['cpu','wasm']) {
    await tf.setBackend(b); const x = tf.tensor(xv);
    const xin = L.endsWith('1d') ? x.reshape([2,63,3]) : x;
    const l = tf.layers[L]({});
    const w = tf.variable(tf.ones([3]));
    const {grads} = tf.variableGrads(() => tf.sum(tf.sin(l.apply(tf.mul(xin, w)))));
    r[b] = grads[w.name].dataSync().slice();
  }
  let m=0; r.cpu.forEach((v,i)=>m=Math.max(m,Math.abs(v-r.wasm[i])));
  console.log(L,'maxdiff',m);
}
