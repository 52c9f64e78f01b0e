// ESM entry: the CommonJS package's exports.
import tq from "./lib/index.js";

export const { Connection, Queue, Worker, MultiWorker, Scheduler, Stats, Plugin, Plugins } = tq;
export default tq;
