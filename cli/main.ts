import { PRODUCT_VERSION } from '../common/version.js';
import { ExitError, UsageError } from './args.js';
import { AUDIT_HELP, auditCommand } from './audit.js';
import { BACKEND_HELP, backendCommand } from './backend.js';
import { BATCH_HELP, batchCommand } from './batch.js';
import { CANARY_HELP, canaryCommand } from './canary.js';
import { GATEWAY_HELP, gatewayCommand } from './gateway.js';
import { KEYS_HELP, keysCommand } from './keys.js';
import { MODELS_HELP, modelsCommand } from './models.js';
import { POLICY_HELP, policyCommand } from './policy.js';
import { UP_HELP, upCommand } from './up.js';

const HELP = `infergate ${PRODUCT_VERSION}: one ingress URL for every model

Commands:
  infergate up                     the whole local stack: sample models, three backend replicas and a
                                   gateway on policies/default.yaml (npm start)
  infergate gateway --policy FILE [--host H] [--port P] [--admin-port A]
  infergate backend --model-repository DIR [--host H] [--port P] [--device cpu|cuda|webgpu]
  infergate policy validate FILE | schema
  infergate keys create --id ID [--models a,b] [--rps N] [--expires 30d] [--redis URL] | list | revoke ID
  infergate models build DIR
  infergate canary status|pause|resume|abort|promote MODEL [--admin URL]
  infergate audit find REQUEST_ID FILE...
  infergate batch --model M --input IN.jsonl --output OUT.jsonl [--url U]   offline batch inference

Run 'infergate COMMAND --help' for a command's options.`;

const COMMANDS: Record<string, { help: string; run: (argv: string[]) => Promise<void> }> = {
  audit: { help: AUDIT_HELP, run: auditCommand },
  backend: { help: BACKEND_HELP, run: backendCommand },
  batch: { help: BATCH_HELP, run: batchCommand },
  canary: { help: CANARY_HELP, run: canaryCommand },
  gateway: { help: GATEWAY_HELP, run: gatewayCommand },
  keys: { help: KEYS_HELP, run: keysCommand },
  models: { help: MODELS_HELP, run: modelsCommand },
  policy: { help: POLICY_HELP, run: policyCommand },
  up: { help: UP_HELP, run: upCommand },
};

/**
 * Exit status: 0 ok, 1 failure, 2 usage error; the policy control plane adds 3 (conflict),
 * 4 (Redis unreachable), 5 (a gateway refused the policy) and 6 (timed out waiting).
 */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${HELP}\n`);
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-v') {
    process.stdout.write(`${PRODUCT_VERSION}\n`);
    return 0;
  }
  const command = COMMANDS[name];
  if (command === undefined) {
    process.stderr.write(`infergate: unknown command '${name}'\n\n${HELP}\n`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`${command.help}\n`);
    return 0;
  }
  try {
    await command.run(rest);
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`infergate ${name}: ${e.message}\n\n${command.help}\n`);
      return 2;
    }
    process.stderr.write(`infergate ${name}: ${(e as Error).message}\n`);
    return e instanceof ExitError ? e.status : 1;
  }
}

const code = await main(process.argv.slice(2));
// Long-running commands (backend) keep the event loop alive; one-shot commands end here.
if (code !== 0) process.exit(code);
