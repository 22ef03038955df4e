/**
 * Where and how a command logs: pino's JSON by default, readable lines when the output is a
 * terminal (as under `npm start`). INFERGATE_LOG_FORMAT=json or pretty overrides the guess.
 */
import { type DestinationStream, pino } from 'pino';
import { readableDestination } from '../common/log-format.js';
import { setting, UsageError } from './args.js';

export function logOutput(fd: 1 | 2 = 1): { destination?: DestinationStream } {
  const stream = fd === 1 ? process.stdout : process.stderr;
  const format = setting(undefined, 'INFERGATE_LOG_FORMAT', 'auto');
  if (format !== 'auto' && format !== 'json' && format !== 'pretty')
    throw new UsageError(`INFERGATE_LOG_FORMAT must be json, pretty or auto, not '${format}'`);
  const readable = format === 'pretty' || (format === 'auto' && stream.isTTY === true);
  if (readable) return { destination: readableDestination(stream, stream.isTTY === true) };
  return fd === 1 ? {} : { destination: pino.destination(2) };
}
