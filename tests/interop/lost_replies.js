// Workers written as a user would with ioredis and its default options, run
// through the fault-injecting proxy (tests/lost_replies.rs): TQ.BPOP, run the
// job (append its args to the ledger), then TQ.POP ... ACK <delivery> to
// complete it and take the next. No retry logic of our own: when the proxy
// closes the connection, ioredis reconnects and, with its default
// `autoResendUnfulfilledCommands`, sends the unanswered command again.
//
// node lost_replies.js <port> <namespace> <ledger file> <workers>
// Jobs are all enqueued before it starts: a take that finds nothing ends a loop.
'use strict';

const fs = require('fs');
const Redis = require('ioredis');

const [port, ns, ledger, workersArg] = process.argv.slice(2);
const workers = Number(workersArg || '1');
const LEASE = ['LEASE', '60000'];
// TQ_OLD_SHAPES=1: the commands as written before delivery ids (no LEASE,
// `ACK` alone), to run this loop against a module built from before them.
const OLD = process.env.TQ_OLD_SHAPES === '1';
const lease = OLD ? [] : LEASE;
const ack = (delivery) => (OLD ? ['ACK'] : ['ACK', String(delivery)]);

async function work(i) {
  const redis = new Redis(Number(port), '127.0.0.1');
  // Each cut is reported as an 'error' event; ioredis recovers by itself.
  redis.on('error', () => {});
  const me = `node:${i}`;
  let runs = 0;
  let job = await redis.call('TQ.BPOP', ns, me, 'q', ...lease, '300');
  while (job) {
    const [, payload, delivery] = job;
    fs.appendFileSync(ledger, JSON.stringify(JSON.parse(payload).args) + '\n');
    runs++;
    job = await redis.call('TQ.POP', ns, me, 'q', ...lease, ...ack(delivery));
    if (!job) job = await redis.call('TQ.BPOP', ns, me, 'q', ...lease, '300');
  }
  redis.disconnect();
  return runs;
}

const giveUp = setTimeout(() => {
  console.error('lost_replies.js: still running after 100 s');
  process.exit(2);
}, 100000);

Promise.all(Array.from({ length: workers }, (_, i) => work(i + 1)))
  .then((runs) => {
    clearTimeout(giveUp);
    console.log(JSON.stringify({ runs }));
  })
  .catch((e) => {
    console.error('lost_replies.js:', e);
    process.exit(1);
  });
