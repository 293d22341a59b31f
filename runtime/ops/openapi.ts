/**
 * The HTTP API's OpenAPI 3.1 document (`GET /openapi.json`), its request parts generated from
 * the zod schemas the server validates with ({@link JOB_REQUEST_SCHEMA} for `POST /jobs`,
 * {@link JOBS_QUERY_SCHEMA} for `GET /jobs`), so the document cannot drift from the checks.
 *
 * ```ts
 * import { openApiDocument } from "./openapi.ts";
 *
 * const doc = openApiDocument();
 * console.log(doc.openapi, Object.keys(doc.paths).includes("/jobs")); // 3.1.0 true
 * ```
 *
 * @module
 */
import { z } from "zod";
import { JOB_STATES } from "./job_feed.ts";
import { JOB_REQUEST_SCHEMA } from "./job_request.ts";

const pageInt = (min: number, max: number) =>
  z.string().regex(/^\d{1,9}$/, `must be an integer in [${min}, ${max}]`).transform(Number)
    .refine((v) => v >= min && v <= max, `must be an integer in [${min}, ${max}]`);

/** The query of `GET /jobs`. */
export const JOBS_QUERY_SCHEMA = z.strictObject({
  state: z.string().superRefine((value, ctx) => {
    for (const state of value.split(",")) {
      if (!JOB_STATES.includes(state)) {
        ctx.addIssue({
          code: "custom",
          message: `unknown state "${state}"; one of ${JOB_STATES.join(", ")}`,
        });
        return;
      }
    }
  }).optional().describe(`only jobs in these states, comma-separated: ${JOB_STATES.join(", ")}`),
  owner: z.string().min(1).max(200).optional().describe("only jobs this node id submitted"),
  limit: pageInt(1, 1_000).default(100).describe("jobs per page, 1 to 1000 (default 100)"),
  offset: pageInt(0, 1e9).default(0).describe("jobs to skip (default 0)"),
});

/** A validated `GET /jobs` query. */
export type JobsQuery = z.output<typeof JOBS_QUERY_SCHEMA>;

const error = {
  description: "An error: `{ error, key?, code? }`",
  content: {
    "application/json": {
      schema: {
        type: "object",
        properties: {
          error: { type: "string" },
          key: { type: "string" },
          code: { type: "string" },
        },
        required: ["error"],
      },
    },
  },
};
const ok = (description: string) => ({
  description,
  content: { "application/json": { schema: { type: "object" } } },
});
const jobId = {
  name: "id",
  in: "path",
  required: true,
  schema: { type: "string" },
  description: "the job id",
};

function queryParameters() {
  const schema = z.toJSONSchema(JOBS_QUERY_SCHEMA, { io: "input", unrepresentable: "any" }) as {
    properties: Record<string, Record<string, unknown>>;
  };
  return Object.entries(schema.properties).map(([name, property]) => ({
    name,
    in: "query",
    required: false,
    description: property.description,
    schema: { ...property, description: undefined },
  }));
}

/** The OpenAPI 3.1 document of the node's HTTP API. */
export function openApiDocument(): {
  openapi: string;
  info: Record<string, string>;
  paths: Record<string, unknown>;
} {
  const request = z.toJSONSchema(JOB_REQUEST_SCHEMA, { io: "input", unrepresentable: "any" });
  delete (request as { $schema?: string }).$schema;
  return {
    openapi: "3.1.0",
    info: {
      title: "CIRO node",
      version: "1",
      description:
        "A node's loopback HTTP API. JSON, amounts as decimal strings. No authentication: " +
        "it binds loopback only.",
    },
    paths: {
      "/health": {
        get: { summary: "Health, counts, the worker's stake", responses: { 200: ok("Health") } },
      },
      "/peers": {
        get: {
          summary: "Peers connected, tracked (dealt with) and heard of",
          responses: { 200: ok("Peers") },
        },
      },
      "/money": { get: { summary: "The ledger's totals", responses: { 200: ok("Totals") } } },
      "/metrics": {
        get: {
          summary: "Prometheus text",
          responses: { 200: { description: "Metrics", content: { "text/plain": {} } } },
        },
      },
      "/jobs": {
        get: {
          summary: "A page of jobs, newest first",
          parameters: queryParameters(),
          responses: { 200: ok("`{ total, offset, limit, next, jobs }`"), 400: error },
        },
        post: {
          summary: "Submit a job (a client node only)",
          requestBody: { required: true, content: { "application/json": { schema: request } } },
          responses: {
            202: ok("`{ jobId }`"),
            400: error,
            408: error,
            409: error,
            413: error,
          },
        },
      },
      "/jobs/{id}": {
        get: {
          summary: "A job's state, context and market",
          parameters: [jobId],
          responses: { 200: ok("The job"), 404: error },
        },
        delete: {
          summary: "Cancel a job (its client only, before assignment)",
          parameters: [jobId],
          responses: { 202: ok("`{ jobId, cancelRequested }`"), 404: error, 409: error },
        },
      },
      "/jobs/{id}/events": {
        get: {
          summary: "Server-sent events: each phase, decline and slash, then `end`",
          parameters: [jobId],
          responses: {
            200: { description: "Events", content: { "text/event-stream": {} } },
            404: error,
          },
        },
      },
      "/jobs/{id}/output": {
        get: {
          summary: "A settled job's verified output",
          parameters: [jobId],
          responses: {
            200: ok("`{ jobId, commitment, output }`"),
            404: error,
            409: error,
            410: error,
          },
        },
      },
      "/openapi.json": { get: { summary: "This document", responses: { 200: ok("OpenAPI") } } },
      "/ui/": {
        get: {
          summary: "The dashboard",
          responses: { 200: { description: "HTML", content: { "text/html": {} } } },
        },
      },
    },
  };
}
