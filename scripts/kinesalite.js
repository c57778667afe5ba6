// Starts kinesalite (in memory) on 127.0.0.1 only; its CLI would listen on every interface.
// Usage: node scripts/kinesalite.js PORT   (with NODE_PATH pointing at its node_modules)
const kinesalite = require('kinesalite');
const port = Number(process.argv[2] || 4567);
const server = kinesalite({ createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 200 });
server.listen(port, '127.0.0.1', (err) => {
  if (err) { console.error(err); process.exit(1); }
  console.log(`kinesalite listening on 127.0.0.1:${port}`);
});
