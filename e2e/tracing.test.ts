import { Writable } from 'node:stream';
import { context, propagation, trace, type Span } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '@parley/log';
import { eventually } from '@parley/testing';
import { http, register, startStack, TestSocket, type Stack } from './stack.js';

// What the OpenTelemetry SDK sets up in production (startTracing), with spans kept in memory.
const exporter = new InMemorySpanExporter();
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
propagation.setGlobalPropagator(new W3CTraceContextPropagator());
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));

describe('one trace follows a message from the WebSocket frame to the Postgres insert', () => {
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('links ws send → publish (NATS headers) → projector → INSERT into messages.messages', async () => {
    const [ann, bob] = [await register(stack), await register(stack)];
    const chat = (await http(stack, 'POST', '/api/v1/chats', { token: ann.accessToken, body: { type: 'direct', userId: bob.id } })).body;
    const socket = await TestSocket.open(stack.wsUrl, ann.accessToken);
    exporter.reset();
    socket.send({ op: 'send', chatId: chat.id, clientMsgId: 'traced', body: 'follow me' });
    const ack = await socket.next((f) => f.op === 'ack');

    const spans = await eventually(async () => {
      const all = exporter.getFinishedSpans();
      const root = all.find((s) => s.name === 'ws send' && s.attributes['parley.message_id'] === ack.messageId);
      if (!root) return undefined;
      const inTrace = all.filter((s) => s.spanContext().traceId === root.spanContext().traceId);
      const done = ['insert messages.messages', 'process chats-projection'].every((n) => inTrace.some((s) => s.name === n));
      return done ? { root, inTrace } : undefined;
    });
    const byName = (name: string) => spans.inTrace.find((s) => s.name === name);
    const publish = byName('send MessageSent');
    const consume = byName('process chats-projection');
    const insert = byName('insert messages.messages');
    expect(publish?.attributes).toMatchObject({ 'messaging.system': 'nats', 'messaging.operation.type': 'send' });
    expect(consume?.attributes).toMatchObject({ 'messaging.system': 'nats', 'messaging.consumer.group.name': 'chats-projection' });
    expect(insert?.attributes).toMatchObject({ 'db.system.name': 'postgresql', 'db.operation.name': 'insert', 'db.collection.name': 'messages.messages' });
    // The chain of parents: the insert belongs to the projector's span, which continues the publisher's.
    const parentOf = (s: ReadableSpan | undefined) => s?.parentSpanContext?.spanId;
    expect(parentOf(publish)).toBe(spans.root.spanContext().spanId);
    expect(parentOf(consume)).toBe(publish?.spanContext().spanId);
    expect(parentOf(insert)).toBe(consume?.spanContext().spanId);
    // No message body in any span.
    expect(JSON.stringify(spans.inTrace.map((s) => s.attributes))).not.toContain('follow me');
    socket.ws.close();
  });

  it('puts trace_id and span_id on log lines written inside a trace', async () => {
    const lines: string[] = [];
    const log = createLogger({ service: 'test', destination: new Writable({ write: (chunk, _enc, done) => (lines.push(String(chunk)), done()) }) });
    await trace.getTracer('test').startActiveSpan('work', async (span: Span) => {
      log.info('inside');
      span.end();
    });
    log.info('outside');
    const [inside, outside] = lines.map((l) => JSON.parse(l));
    const traced = exporter.getFinishedSpans().find((s) => s.name === 'work')!;
    expect(inside).toMatchObject({ msg: 'inside', trace_id: traced.spanContext().traceId, span_id: traced.spanContext().spanId });
    expect(outside.trace_id).toBeUndefined();
  });
});
