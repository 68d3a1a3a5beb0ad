import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
await tf.setBackend('cpu');
const shape=[2,9,7,3];
const xv = tf.tensor(Array.from({length:2*9*7*3},(_,k)=>Math.cos(k*1.13)), shape).arraySync();
const combos=[];for (const fh of [1,2,3]) for (const fw of [1,2,3]) for (const sh of [1,2]) for (const sw of [1,2]) for (const p of ['same','valid']) combos.push([[fh,fw],[sh,sw],p]);
for (const [f,s,p] of combos) {
 const r={};
 let ref;
 for (const b of ['cpu','wasm']) {
  await tf.setBackend(b); const x = tf.tensor(xv);
  const fn = x => tf.maxPool(x,f,s,p);
  const y = fn(x);
  const dy = tf.tensor(Array.from({length:y.size},(_,k)=>Math.sin(k*0.7)), y.shape);
  r[b] = tf.grad(fn)(x, dy).dataSync().slice();
  if (b==='cpu') {
    const info = tf.backend_util.computePool2DInfo(shape, f, s, 1, p);
    const X = x.bufferSync(); const DY = dy.bufferSync(); ref = new Float32Array(x.size); const R = tf.buffer(shape,'float32',ref);
    for (let n=0;n<2;n++) for (let i=0;i<info.outHeight;i++) for (let j=0;j<info.outWidth;j++) for (let c=0;c<3;c++) {
      let best=-Infinity, bi=-1,bj=-1;
      for (let a=0;a<info.filterHeight;a++) for (let bb=0;bb<info.filterWidth;bb++) { const h=i*info.strideHeight+a-info.padInfo.top, w=j*info.strideWidth+bb-info.padInfo.left; if(h<0||w<0||h>=9||w>=7) continue; const v=X.get(n,h,w,c); if (v>best){best=v;bi=h;bj=w;} }
      R.set(R.get(n,bi,bj,c)+DY.get(n,i,j,c), n,bi,bj,c);
    }
  }
 }
 const md=(a,b)=>{let m=0;a.forEach((v,i)=>m=Math.max(m,Math.abs(v-b[i])));return m;};
 if (md(r.wasm,ref)>1e-5 || md(r.cpu,ref)>1e-5) console.log(JSON.stringify([f,s,p]),'cpu-ref',md(r.cpu,ref),'wasm-ref',md(r.wasm,ref));
}
