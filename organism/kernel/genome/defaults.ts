/**
 * The genome's defaults, each written here and nowhere else: types.ts documents what a field
 * means, docs/genome.md lists these values (a test keeps it in step).
 */
import type { Genome, TissueGene } from './types.ts';

/** What a tissue gets for every field its genome leaves out. */
export const TISSUE_DEFAULTS: Readonly<TissueGene> = Object.freeze({
  module: '',
  min: 1,
  max: 4,
  high: 0.75,
  low: 0.2,
  target: 0.6,
  idleMs: 30_000,
  halfLifeMs: 2_000,
  perHost: 0,
});

/** A fresh, mutable copy of the default genome. */
export function defaultGenome(): Genome {
  return {
    version: 1,
    tissues: {
      stem: { ...TISSUE_DEFAULTS, module: 'stem', min: 2, max: 8 },
      echo: { ...TISSUE_DEFAULTS, module: 'echo', min: 1, max: 4 },
      // One per host, so every host has a front door.
      receiver: { ...TISSUE_DEFAULTS, module: 'receiver', min: 1, max: 4, perHost: 1 },
      worker: { ...TISSUE_DEFAULTS, module: 'worker', min: 1, max: 4 },
      // A singleton: regrown when it dies, never divided.
      dashboard: { ...TISSUE_DEFAULTS, module: 'dashboard', min: 1, max: 1 },
    },
    limits: {
      cellsPerHost: 32,
      mitosisPerMinute: 60,
      rssPerHostMb: 4096,
      lineageBudget: 16,
      homeostasis: true,
      regrowBackoffMs: 500,
      regrowBackoffMaxMs: 30_000,
      crashWindowMs: 1_000,
      joinTimeoutMs: 5_000,
      hormoneMaxBytes: 8192,
      pulseIntervalMs: 500,
      suspectAfterPulses: 3,
      deadAfterPulses: 6,
      hormoneMaxAgeMs: 30_000,
      replayWindowMs: 2_000,
      drainTimeoutMs: 5_000,
      shutdownTimeoutMs: 10_000,
      deadRetentionMs: 10_000,
      brokerLossMs: 15_000,
    },
    broker: { host: '127.0.0.1', port: 0, monitorPort: 0, maxPayload: 1_048_576, replicas: 0 },
    messenger: {
      host: '127.0.0.1',
      portMin: 8101,
      portMax: 8199,
      frontPort: 8080,
      origins: '',
      publicUrl: '',
      maxFrameBytes: 65_536,
      maxBodyBytes: 32_768,
      framesPerSecond: 100,
      connectionsPerIp: 1024,
      maxPendingBytes: 1_048_576,
      slowClientMs: 10_000,
      cursorFlushMs: 50,
      storeInflight: 8,
      groupMaxMembers: 64,
      pageMax: 256,
      scryptLogN: 17,
      scryptR: 8,
      scryptP: 1,
      loginAttemptsPerUser: 10,
      loginAttemptsPerIp: 50,
      loginWindowMs: 60_000,
      sessionTtlMs: 7 * 24 * 3_600_000,
      messageRetentionMs: 30 * 24 * 3_600_000,
      dedupeWindowMs: 600_000,
      workerWaitMs: 3_000,
    },
    immune: {
      enabled: true,
      floodPerSecond: 100,
      floodWindowMs: 2_000,
      forgeriesMax: 3,
      checkIntervalMs: 500,
      liarSlackMs: 500,
      liarCpuPoints: 50,
      liarRssFactor: 4,
      liarChecks: 2,
      genomeMismatches: 2,
      voteDeadlineMs: 3_000,
    },
    dashboard: {
      host: '127.0.0.1',
      port: 8090,
      pushIntervalMs: 500,
      eventsMax: 2_000,
      seriesPoints: 900,
      clientsMax: 16,
      frameMaxBytes: 4_096,
      controlsPerMinute: 30,
      loadMaxSeconds: 120,
      loadMaxRate: 2_000,
      recorderMaxAgeMs: 30 * 60_000,
      recorderMaxBytes: 64 * 1024 * 1024,
      frameIntervalMs: 1_000,
    },
  };
}
