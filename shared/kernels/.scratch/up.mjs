import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
await tf.setBackend("cpu");
const xv = tf.tensor(Array.from({length:2*4*4*3},(_,k)=>Math.cos(k*0.13)), [2,4,4,3]);
const dyv = Array.from({length:2*8*8*3},(_,k)=>Math.sin(k*0.7));
for (const b of ['cpu','wasm']) {
  await tf.setBackend(b); const x = tf.tensor(xv.arraySync());
  for (const [ac, hp] of [[false,false],[false,true],[true,false]]) {
    const g = tf.grad(x => tf.image.resizeNearestNeighbor(x, [8,8], ac, hp))(x, tf.tensor(dyv,[2,8,8,3]));
    // reference: sum of 2x2 blocks
    const ref = tf.tensor(dyv,[2,4,2,4,2,3]).sum([2,4]);
    console.log(b, ac, hp, tf.max(tf.abs(g.sub(ref))).dataSync()[0]);
  }
  for (const [ac, hp, sz] of [[false,false,[7,9]],[false,true,[7,9]],[true,false,[7,9]]]) {
    const g = tf.grad(x => tf.image.resizeNearestNeighbor(x, sz, ac, hp))(x, tf.ones([2,...sz,3]));
    console.log(b, 'odd', ac, hp, Array.from(g.sum([0,3]).dataSync()).join(','));
  }
  for (const [ac, hp] of [[false,false],[false,true],[true,false]]) {
    const g = tf.grad(x => tf.image.resizeBilinear(x, [7,9], ac, hp))(x, tf.tensor(Array.from({length:2*7*9*3},(_,k)=>Math.sin(k*0.7)),[2,7,9,3]));
    console.log(b, 'bilinear', ac, hp, Array.from(g.sum([0,3]).dataSync()).map(v=>v.toFixed(4)).join(','));
  }
}
