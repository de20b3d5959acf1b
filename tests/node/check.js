// A Node.js client for palisade.v1.Guard, written from the .proto alone (no generated code):
//   node check.js HOST:PORT CASES.json
// CASES.json is a list of {"name", "request"} where "request" is a CheckRequest as JSON (enum names,
// tool arguments as plain JSON). Prints one summary per case, as a JSON list, on stdout.
'use strict';

const path = require('path');
const fs = require('fs');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_ROOT = path.resolve(__dirname, '..', '..', 'proto');
const CALL_TIMEOUT_MS = 10000;

function loadGuard() {
  const definition = protoLoader.loadSync('palisade/v1/guard.proto', {
    includeDirs: [PROTO_ROOT],
    keepCase: true,
    enums: String,
    longs: String,
    defaults: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(definition).palisade.v1.Guard;
}

// google.protobuf.Struct/Value from plain JSON. proto-loader takes the well-known types from
// protobufjs's bundled definitions, whose field names are camelCase whatever `keepCase` says.
function toValue(value) {
  if (value === null || value === undefined) return { nullValue: 'NULL_VALUE' };
  if (Array.isArray(value)) return { listValue: { values: value.map(toValue) } };
  switch (typeof value) {
    case 'string': return { stringValue: value };
    case 'number': return { numberValue: value };
    case 'boolean': return { boolValue: value };
    default: return { structValue: toStruct(value) };
  }
}

function toStruct(object) {
  const fields = {};
  for (const [key, value] of Object.entries(object)) fields[key] = toValue(value);
  return { fields };
}

function toRequest(request) {
  const message = { ...request };
  if (request.tool) {
    message.tool = { ...request.tool, arguments: toStruct(request.tool.arguments || {}) };
  }
  return message;
}

const STATUS_NAMES = Object.fromEntries(Object.entries(grpc.status).map(([name, code]) => [code, name]));

function summarise(name, error, response) {
  if (error) return { name, code: STATUS_NAMES[error.code] || String(error.code) };
  return {
    name,
    code: 'OK',
    outcome: response.outcome,
    version: response.version,
    deciding: response.matches.filter((m) => m.deciding).map((m) => m.rule),
    reasons: response.reasons,
    redacted: response._redacted === 'redacted' ? response.redacted : null,
    fallback: response.fallback
      ? { kind: response.fallback.kind, reply: response.fallback.reply, model: response.fallback.model }
      : null,
    escalation_queue: response.escalation ? response.escalation.queue : null,
    has_approval_id: Boolean(response.escalation && response.escalation.approval_id),
    finding_types: response.findings.map((f) => f.type),
    has_decision_id: response.decision_id.length > 0,
  };
}

function check(client, name, request) {
  return new Promise((resolve) => {
    const deadline = new Date(Date.now() + CALL_TIMEOUT_MS);
    client.Check(toRequest(request), { deadline }, (error, response) => {
      resolve(summarise(name, error, response));
    });
  });
}

async function main() {
  const [target, casesFile] = process.argv.slice(2);
  if (!target || !casesFile) {
    console.error('usage: node check.js HOST:PORT CASES.json');
    process.exit(2);
  }
  const cases = JSON.parse(fs.readFileSync(casesFile, 'utf8'));
  const Guard = loadGuard();
  const client = new Guard(target, grpc.credentials.createInsecure());
  const results = [];
  for (const { name, request } of cases) results.push(await check(client, name, request));
  client.close();
  process.stdout.write(JSON.stringify(results, null, 2) + '\n');
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
