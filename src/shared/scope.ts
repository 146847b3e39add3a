import { DEFAULT_PROJECT } from './keys.js';

/** Who is asking: every project (admin tokens, the CLI) or one project (its API tokens). */
export type Scope = { all: true; project?: undefined } | { all: false; project: string };

export const ALL_PROJECTS: Scope = { all: true };
export const projectScope = (project: string): Scope => ({ all: false, project });

/** Whether `scope` may see something of `project` (a record that names no project is the default one's). */
export const sees = (scope: Scope, project: string | null | undefined) =>
  scope.all || scope.project === (project || DEFAULT_PROJECT);
