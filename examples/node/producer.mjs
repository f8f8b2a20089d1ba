// Publish one job to authrelay and wait for its result (the RabbitMQ RPC pattern).
//
// AUTHRELAY_AMQP_URL and AUTHRELAY_AMQP_PREFIX say where authrelay listens (its own defaults);
// TARGET_URL is the request to run; AUTH_PROFILE_ID, if set, the stored profile whose
// credentials it gets (WORKSPACE_ID its workspace). Exit code: 0 succeeded, 1 another
// outcome, 2 no result.
import { randomUUID } from 'node:crypto';
import amqp from 'amqplib';

const env = process.env;
const url = env.AUTHRELAY_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672/%2f';
const prefix = env.AUTHRELAY_AMQP_PREFIX ?? 'authrelay';
const timeoutMs = Number(env.TIMEOUT_MS ?? 30000);
const job = {
  job_id: randomUUID(),
  workspace_id: env.WORKSPACE_ID ?? 'acme',
  phase: 'during_call',
  action_id: 'example',
  request: { method: 'GET', url: env.TARGET_URL ?? 'https://api.example.com/v1/ping' },
};
if (env.AUTH_PROFILE_ID) job.auth_profile_id = env.AUTH_PROFILE_ID;

const connection = await amqp.connect(url);
const channel = await connection.createConfirmChannel();
// A private reply queue, consumed before publishing so that the reply cannot be missed.
const { queue: replyTo } = await channel.assertQueue('', { exclusive: true, autoDelete: true });
const correlationId = randomUUID();
let answer;
const answered = new Promise((resolve) => { answer = resolve; });
await channel.consume(replyTo, (msg) => {
  if (msg?.properties.correlationId === correlationId) answer(JSON.parse(msg.content.toString()));
}, { noAck: true });
channel.on('return', () => {
  console.error('no queue took the job: is authrelay running, with this AUTHRELAY_AMQP_PREFIX?');
  process.exit(2);
});
channel.publish(`${prefix}.actions`, job.phase, Buffer.from(JSON.stringify(job)), {
  contentType: 'application/json', persistent: true, replyTo, correlationId, mandatory: true,
});
await channel.waitForConfirms();
const result = await Promise.race([answered, new Promise((resolve) => setTimeout(resolve, timeoutMs, null))]);
if (!result) {
  console.error(`no result for job ${job.job_id} within ${timeoutMs} ms`);
  process.exit(2);
}
console.log(JSON.stringify(result, null, 2));
await connection.close();
process.exit(result.outcome === 'succeeded' ? 0 : 1);
