/**
 * The piscina task file of the audit: per-thread setup from the pool's `workerData` (model bytes,
 * the detector plan, backend), started on the first message; then one batch per task. Results
 * travel back transferred, not copied.
 */
import { AuditRuntime, auditResultBuffers, type AuditSetup, type AuditTask } from './audit-task.js';
import { taskWorker, type WorkerMessage } from './protocol.js';

/** A message to the worker: start up and describe yourself, or score a batch. */
export type AuditMessage = WorkerMessage<AuditTask>;

export default taskWorker((setup: AuditSetup, workerId) => AuditRuntime.create(setup, workerId), auditResultBuffers);
