/**
 * The genome: the organism's typed configuration. Built once from defaults, then an
 * optional JSON file, then CLI overrides; validated with messages that name the field,
 * the expectation and the value received; then deep-frozen. Every cell gets the same
 * frozen genome in its birth packet and reports its hash, so a cell running another
 * genome is visible. Types, defaults (each written once), rules, loading and the hash
 * live in their own files here; docs/genome.md lists every field and its default.
 */
export type { BrokerGene, DashboardGene, Genome, ImmuneGene, Limits, MessengerGene, TissueGene } from './types.ts';
export { defaultGenome, TISSUE_DEFAULTS } from './defaults.ts';
export { validateGenome } from './rules.ts';
export { loadGenome, mergeGenome, readGenomeFile, setGenomePath, type GenomeSources } from './load.ts';
export { genomeHash } from './hash.ts';
