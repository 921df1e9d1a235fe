// A small typed use of the generated definitions: `tsc --noEmit` compiles it against schema.d.ts (the
// Python test tests/client/test_typescript.py runs it), so a route or field the app no longer has, or a
// changed type, fails the build here before it fails in an app.
import type { components, operations, paths } from "./schema";

type Schemas = components["schemas"];
type JsonBody<P extends keyof paths, M extends "post" | "get"> = paths[P][M] extends {
  requestBody?: { content: { "application/json": infer B } };
}
  ? B
  : never;

export type DecideRequest = JsonBody<"/v1/decide", "post">;
export type Decided = operations["decide_v1_decide_post"]["responses"][200]["content"]["application/json"];
export type FeedbackRequest = Schemas["FeedbackCreateRequest"];
export type FeedbackReceipt = Schemas["FeedbackResponse"];
export type Problem = Schemas["ErrorResponse"];

/** POST a JSON body with the key; a problem+json answer is thrown as the typed Problem. */
async function post<T>(baseUrl: string, apiKey: string, path: keyof paths, body: unknown): Promise<T> {
  const answer = await fetch(new URL(path, baseUrl), {
    method: "POST",
    headers: { Authorization: `Bearer ${apiKey}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!answer.ok) {
    const problem = (await answer.json()) as Problem;
    throw new Error(`${problem.status} ${problem.title}: ${problem.detail} (field ${problem.field ?? "-"})`);
  }
  return (await answer.json()) as T;
}

export function decide(baseUrl: string, apiKey: string, body: DecideRequest): Promise<Decided> {
  return post<Decided>(baseUrl, apiKey, "/v1/decide", body);
}

export function feedback(baseUrl: string, apiKey: string, body: FeedbackRequest): Promise<FeedbackReceipt> {
  return post<FeedbackReceipt>(baseUrl, apiKey, "/v1/feedback", body);
}

/** Decide for a router context, then rate the chosen arm: the calls an app makes. */
export async function decideAndRate(baseUrl: string, apiKey: string, reward: number): Promise<string> {
  const decided = await decide(baseUrl, apiKey, {
    policy: "support-router",
    features: [0.2, 1.0],
    unit_id: "user-42",
  });
  const best: number = Math.max(...Object.values(decided.probabilities));
  const receipt = await feedback(baseUrl, apiKey, {
    decision_id: decided.decision_id,
    kind: "rating",
    value: reward * best,
    scale: [0, 1],
  });
  return receipt.id;
}

// The definitions refuse what the service refuses (each line must be a type error, or tsc fails).
// @ts-expect-error a feedback kind the API does not have
export const badKind: FeedbackRequest = { decision_id: "d", kind: "thumbs" };
// @ts-expect-error a decide request needs the policy
export const noPolicy: DecideRequest = { features: [1] };
// @ts-expect-error features are numbers
export const textFeatures: DecideRequest = { policy: "p", features: ["a"] };
