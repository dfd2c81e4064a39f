/**
 * Stem tissue: an idle pool. A stem cell serves nothing and costs little; homeostasis
 * recruits one and has it differentiate into a tissue that needs to grow (see issue 3),
 * which is faster than spawning a new process.
 */
import { defineTissue } from '../tissue.ts';

export default defineTissue({
  name: 'stem',
  capacity: 1,
});
