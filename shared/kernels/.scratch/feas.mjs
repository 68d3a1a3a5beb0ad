import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
const md=(a,b)=>{let m=0;a.forEach((v,i)=>m=Math.max(m,Math.abs(v-b[i])));return m;};
async function both(fn) { const r={}; for (const b of ['cpu','wasm']) { await tf.setBackend(b); r[b]=tf.tidy(()=>{const t=fn(); r.shape=t.shape; return Array.from(t.dataSync())}); } return [md(r.cpu,r.wasm), JSON.stringify(r.shape)]; }
const rnd=(shape,seed=1)=>tf.tensor(Array.from({length:shape.reduce((a,b)=>a*b,1)},(_,k)=>Math.sin(k*0.37+seed)), shape);
// 6D pad
console.log('pad6d', await both(()=>tf.pad(rnd([2,3,1,4,1,5]), [[0,0],[0,0],[0,1],[0,0],[0,2],[0,0]])));
// conv with stride & dilation both >1 -- call kernel directly (op asserts)
console.log('conv s2 d2', await both(()=>tf.engine().runKernel('Conv2D', {x: rnd([2,11,10,3]), filter: rnd([3,2,3,4],2)}, {strides:[2,3], dilations:[2,2], pad:[[0,0],[1,2],[0,1],[0,0]], dataFormat:'NHWC'})));
console.log('conv big kernel', await both(()=>tf.engine().runKernel('Conv2D', {x: rnd([3,26,26,8]), filter: rnd([11,11,8,4],2)}, {strides:[1,1], dilations:[2,2], pad:[[0,0],[1,2],[0,1],[0,0]], dataFormat:'NHWC'})));
console.log('dw big kernel mult', await both(()=>tf.engine().runKernel('DepthwiseConv2dNative', {x: rnd([1,26,26,8]), filter: rnd([11,11,8,3],2)}, {strides:[1,1], dilations:[2,2], pad:[[0,0],[1,2],[0,1],[0,0]]})));

console.log('scatterNd dup', await both(()=>tf.scatterND(tf.tensor([[0],[2],[0],[1]],[4,1],'int32'), rnd([4,3]), [4,3])));
console.log('sum axis', await both(()=>tf.sum(rnd([2,3,4,5]), 2)));
console.log('reverse', await both(()=>tf.reverse(rnd([3,2,4,5]), [0,1])));
for (const [s,p,xs] of [[1,'valid',[2,8,8,3]],[2,'same',[2,9,7,3]],[2,'valid',[2,9,7,3]],[3,'same',[1,10,11,2]],[[2,1],[[0,0],[1,2],[2,0],[0,0]],[2,9,7,3]]]) {
  console.log('convBackpropInput', s, JSON.stringify(p), await both(()=>{ const f=rnd([3,3,xs[3],4],3); const y = tf.conv2d(rnd(xs),f,s,p); return tf.conv2dTranspose(rnd(y.shape,5), f, xs, s, p);}));
}
