/**
 * The subcommands of the `wa-sip-bridge` binary. `src/main.ts` hands argv over when its first
 * argument is one of these; without one, the binary starts the bridge.
 */
import { EXIT, stdio, UsageError } from './common.js';

export const COMMANDS = ['check', 'simulate'] as const;
export type Command = (typeof COMMANDS)[number];

export function isCommand(arg: string | undefined): arg is Command {
  return (COMMANDS as readonly string[]).includes(arg ?? '');
}

/** Run a subcommand; resolves with the process exit code. */
export async function runCommand(command: Command, argv: string[]): Promise<number> {
  try {
    if (command === 'check') return await (await import('./check.js')).runCheck(argv);
    // The simulator (werift, a Graph API server) is loaded only for `simulate`.
    return await (await import('./simulate.js')).runSimulate(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      stdio.err(`wa-sip-bridge ${command}: ${err.message} (see wa-sip-bridge ${command} --help)`);
      return EXIT.usage;
    }
    throw err;
  }
}
