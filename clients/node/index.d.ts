// Types of tq-resque: node-resque 9's API (its shapes), on the tq module.
import { EventEmitter } from "events";
import type { Redis, RedisOptions } from "ioredis";

export interface ConnectionOptions {
  pkg?: string;
  host?: string;
  port?: number;
  database?: number;
  namespace?: string | string[];
  scanCount?: number;
  options?: RedisOptions;
  redis?: Redis;
  /** ms: the lease of jobs taken by Workers on this connection, unless WorkerOptions.leaseMs says otherwise. */
  leaseMs?: number;
}

export interface ParsedJob {
  class: string;
  queue: string;
  args: Array<any>;
  pluginOptions?: { [key: string]: any };
}

export interface ParsedWorkerPayload {
  run_at: string;
  queue: string;
  worker: string;
  payload: ParsedJob;
}

export interface ParsedFailedJobPayload {
  worker: string;
  queue: string;
  payload: ParsedJob;
  exception: string;
  error: string;
  backtrace: string[] | null;
  failed_at: string;
}

export type PluginClass = new (
  worker: Queue | Worker,
  func: string,
  queue: string,
  job: Job<any>,
  args: Array<any>,
  options: { [key: string]: any },
) => Plugin;

export type PluginReference = string | PluginClass;

export interface Job<TResult = unknown> {
  plugins?: PluginReference[];
  pluginOptions?: { [pluginName: string]: { [key: string]: any } };
  perform: (...args: any[]) => Promise<TResult> | TResult;
}

export interface Jobs {
  [jobName: string]: Job<any>;
}

export declare class Connection extends EventEmitter {
  constructor(options?: ConnectionOptions);
  options: ConnectionOptions;
  connected: boolean;
  redis: Redis;
  /** The namespace as one string: the first argument of every TQ command. */
  ns: string;
  connect(): Promise<void>;
  end(): void;
  duplicate(): Redis;
  key(...parts: Array<string | number>): string;
  tq(name: string, ...args: Array<string | number>): Promise<any>;
}

export interface QueueOptions {
  connection?: ConnectionOptions;
}

export interface TasksDetails {
  queues: { [queue: string]: { length: number } };
  workers: { [worker: string]: ParsedWorkerPayload | "started" };
  stats: { [name: string]: string };
  leader: string | null;
}

export declare class Queue extends EventEmitter {
  constructor(options: QueueOptions, jobs?: Jobs);
  options: QueueOptions;
  jobs: Jobs;
  connection: Connection;
  connect(): Promise<void>;
  end(): Promise<void>;
  encode(q: string, func: string, args?: Array<any>): string;
  enqueue(q: string, func: string, args?: Array<any> | any): Promise<boolean>;
  enqueueAt(timestamp: number, q: string, func: string, args?: Array<any> | any, suppressDuplicateTaskError?: boolean): Promise<boolean | undefined>;
  enqueueIn(time: number, q: string, func: string, args?: Array<any> | any, suppressDuplicateTaskError?: boolean): Promise<boolean | undefined>;
  queues(): Promise<string[]>;
  delQueue(q: string): Promise<void>;
  length(q: string): Promise<number>;
  del(q: string, func: string, args?: Array<any> | any, count?: number): Promise<number>;
  delByFunction(q: string, func: string, start?: number, stop?: number): Promise<number>;
  delDelayed(q: string, func: string, args?: Array<any> | any): Promise<number[]>;
  scheduledAt(q: string, func: string, args?: Array<any> | any): Promise<number[]>;
  timestamps(): Promise<number[]>;
  delayedAt(timestamp: number): Promise<{ tasks: ParsedJob[]; rTimestamp: number }>;
  queued(q: string, start: number, stop: number): Promise<ParsedJob[]>;
  allDelayed(): Promise<{ [timestamp: string]: ParsedJob[] }>;
  locks(): Promise<{ [lock: string]: string }>;
  delLock(key: string): Promise<number>;
  workers(): Promise<{ [worker: string]: string }>;
  workingOn(workerName: string, queues: string): Promise<string | null>;
  allWorkingOn(): Promise<{ [worker: string]: ParsedWorkerPayload | "started" }>;
  forceCleanWorker(workerName: string): Promise<ParsedFailedJobPayload | undefined>;
  cleanOldWorkers(age: number): Promise<{ [worker: string]: ParsedFailedJobPayload }>;
  failedCount(): Promise<number>;
  failed(start: number, stop: number): Promise<ParsedFailedJobPayload[]>;
  removeFailed(failedJob: ParsedFailedJobPayload): Promise<number>;
  retryAndRemoveFailed(failedJob: ParsedFailedJobPayload): Promise<boolean>;
  retryStuckJobs(upperLimit?: number): Promise<void>;
  leader(): Promise<string | null>;
  stats(): Promise<{ [key: string]: string }>;
  details(): Promise<TasksDetails>;
  /** TQ.RECUR: a periodic task the module's timer enqueues every `everyMs`; 1 registered, 0 re-timed. */
  recur(q: string, func: string, everyMs: number, args?: Array<any> | any): Promise<number>;
  /** TQ.UNRECUR: 1 removed, 0 unknown. */
  unrecur(q: string, func: string, args?: Array<any> | any): Promise<number>;
  recurs(): Promise<Array<{ job: ParsedJob; everyMs: number; nextDueMs: number }>>;
  /** Stops a periodic task: TQ.UNRECUR, its waiting instance and QueueLock key removed; how many it removed. */
  stopRecurrent(q: string, func: string, args?: Array<any> | any): Promise<number>;
  /** Whether `func` with `args` is an instance of an ActionHero periodic task (on TQ.RECUR). */
  isPeriodic(func: string, args?: Array<any> | any): boolean;
  /** TQ.BROADCAST: once on each live worker process; how many it reached. */
  broadcast(func: string, args?: Array<any> | any): Promise<number>;
  broadcastAt(timestamp: number, q: string, func: string, args?: Array<any> | any): Promise<boolean | undefined>;
  broadcastIn(time: number, q: string, func: string, args?: Array<any> | any): Promise<boolean | undefined>;
  recurBroadcast(q: string, func: string, everyMs: number, args?: Array<any> | any): Promise<number>;
  unrecurBroadcast(q: string, func: string, args?: Array<any> | any): Promise<number>;
  leaderKey(): string;
  on(event: "error", cb: (error: Error | string) => void): this;
}

export interface WorkerOptions {
  connection?: ConnectionOptions;
  name?: string;
  id?: number;
  queues?: string[] | string;
  /** ms: how long one TQ.BPOP waits before a `pause` event, and the ping period. */
  timeout?: number;
  looping?: boolean;
  /** ms: the lease of every job taken (renewed by heartbeats while it runs). Default 60000. */
  leaseMs?: number;
  /** Whether broadcasts reach this worker (default true; a MultiWorker gives them to its first slot only). */
  broadcasts?: boolean;
}

export declare class Worker extends EventEmitter {
  constructor(options: WorkerOptions, jobs?: Jobs);
  options: WorkerOptions;
  jobs: Jobs;
  name: string;
  queues: string[];
  queue: string | null;
  error: Error | null;
  result: any;
  running: boolean;
  working: boolean;
  job: ParsedJob | null;
  started: boolean;
  queueObject: Queue;
  connection: Connection;
  id: number;
  connect(): Promise<void>;
  start(): Promise<void>;
  end(): Promise<void>;
  performInline(func: string, args?: Array<any>): Promise<any>;
  on(event: "start" | "end", cb: (date: Date) => void): this;
  on(event: "cleaning_worker", cb: (worker: string, pid: string) => void): this;
  on(event: "poll", cb: (queue: string) => void): this;
  on(event: "ping", cb: (time: number) => void): this;
  on(event: "job", cb: (queue: string, job: ParsedJob) => void): this;
  on(event: "reEnqueue", cb: (queue: string, job: ParsedJob, plugin: { delay: number; remainingAttempts: number; err: Error }) => void): this;
  on(event: "success", cb: (queue: string, job: ParsedJob, result: any, duration: number) => void): this;
  on(event: "failure", cb: (queue: string, job: ParsedJob, failure: Error, duration: number) => void): this;
  on(event: "error", cb: (error: Error, queue: string, job: ParsedJob) => void): this;
  on(event: "pause", cb: () => void): this;
}

export interface MultiWorkerOptions {
  connection?: ConnectionOptions;
  name?: string;
  queues?: string[] | string;
  timeout?: number;
  minTaskProcessors?: number;
  maxTaskProcessors?: number;
  checkTimeout?: number;
  maxEventLoopDelay?: number;
  leaseMs?: number;
}

export declare class MultiWorker extends EventEmitter {
  constructor(options: MultiWorkerOptions, jobs: Jobs);
  options: MultiWorkerOptions;
  jobs: Jobs;
  workers: Worker[];
  name: string;
  running: boolean;
  working: boolean;
  eventLoopBlocked: boolean;
  eventLoopDelay: number;
  start(): void;
  stop(): Promise<void>;
  end(): Promise<void>;
  on(event: "start" | "end", cb: (workerId: number) => void): this;
  on(event: "cleaning_worker", cb: (workerId: number, worker: string, pid: string) => void): this;
  on(event: "poll", cb: (workerId: number, queue: string) => void): this;
  on(event: "ping", cb: (workerId: number, time: number) => void): this;
  on(event: "job", cb: (workerId: number, queue: string, job: ParsedJob) => void): this;
  on(event: "reEnqueue", cb: (workerId: number, queue: string, job: ParsedJob, plugin: { delay: number; remainingAttempts: number; err: Error }) => void): this;
  on(event: "success", cb: (workerId: number, queue: string, job: ParsedJob, result: any, duration: number) => void): this;
  on(event: "failure", cb: (workerId: number, queue: string, job: ParsedJob, failure: Error, duration: number) => void): this;
  on(event: "error", cb: (error: Error, workerId: number, queue: string, job: ParsedJob) => void): this;
  on(event: "pause", cb: (workerId: number) => void): this;
  on(event: "multiWorkerAction", cb: (verb: string, delay: number) => void): this;
}

export interface SchedulerOptions {
  connection?: ConnectionOptions;
  name?: string;
  timeout?: number;
  leaderLockTimeout?: number;
  stuckWorkerTimeout?: number;
  retryStuckJobs?: boolean;
}

export declare class Scheduler extends EventEmitter {
  constructor(options: SchedulerOptions, jobs?: Jobs);
  options: SchedulerOptions;
  name: string;
  leader: boolean;
  running: boolean;
  queue: Queue;
  connection: Connection;
  connect(): Promise<void>;
  start(): Promise<void>;
  end(): Promise<void>;
  tryForLeader(): Promise<boolean>;
  releaseLeaderLock(): Promise<boolean>;
  on(event: "start" | "end" | "poll" | "leader", cb: () => void): this;
  on(event: "cleanStuckWorker", cb: (workerName: string, errorPayload: ParsedFailedJobPayload, delta: number) => void): this;
  on(event: "error", cb: (error: Error) => void): this;
  /** How many due jobs one TQ.PROMOTE moved (the module's timer usually does it first). */
  on(event: "promoted", cb: (count: number) => void): this;
}

/** Counters at two levels, as ActionHero's api.stats: global and this server's ("local"). */
export declare class Stats extends EventEmitter {
  constructor(options?: { connection?: ConnectionOptions; server?: string });
  server: string;
  connection: Connection;
  connect(): Promise<void>;
  end(): Promise<void>;
  increment(key: string, count?: number): Promise<{ global: number; local: number }>;
  get(key: string, scope?: "global" | "local"): Promise<number>;
  getAll(): Promise<{ global: { [key: string]: number }; local: { [key: string]: number } }>;
}

export declare abstract class Plugin {
  constructor(worker: Queue | Worker, func: string, queue: string, job: Job<any>, args: Array<any>, options: { [key: string]: any });
  name: string;
  worker: Queue | Worker;
  queueObject: Queue;
  queue: string;
  func: string;
  job: Job<any>;
  args: Array<any>;
  options: { [key: string]: any };
  beforeEnqueue?(): Promise<boolean>;
  afterEnqueue?(): Promise<boolean>;
  beforePerform?(): Promise<boolean>;
  afterPerform?(): Promise<boolean>;
}

export declare const Plugins: {
  QueueLock: PluginClass;
  JobLock: PluginClass;
  Retry: PluginClass;
  DelayQueueLock: PluginClass;
  Noop: PluginClass;
};
