// The peer for bench/ingest.py: the reference Node.js tus server (@tus/server + @tus/file-store),
// stock configuration. It does no hashing and no fsync: a 204 means the bytes reached the page cache.
//
//   node bench/tus_peer.mjs --port 1080 --dir /path/to/files --modules bench/.work/peer/node_modules
//
// --modules is where `npm install --prefix bench/.work/peer @tus/server @tus/file-store` put them
// (node_modules is kept out of the repository). Prints "listening <port>" once ready.

import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '1080' },
    host: { type: 'string', default: '127.0.0.1' },
    dir: { type: 'string' },
    modules: { type: 'string', default: 'bench/.work/peer/node_modules' },
  },
});
if (!values.dir) {
  console.error('--dir is required');
  process.exit(2);
}
mkdirSync(values.dir, { recursive: true });

const require = createRequire(join(resolve(values.modules), '..', 'package.json'));
const load = async (name) => import(pathToFileURL(require.resolve(name)).href);
const { Server } = await load('@tus/server');
const { FileStore } = await load('@tus/file-store');

const server = new Server({
  path: '/files',
  datastore: new FileStore({ directory: values.dir }),
});
const port = Number(values.port);
server.listen({ host: values.host, port }, () => {
  console.log(`listening ${port}`);
});
const stop = () => process.exit(0);
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
