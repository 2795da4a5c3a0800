// Typed GraphQL documents: `graphql()` (gql.tada) infers each document's result
// and variables types from the schema, whose introspection is
// ./graphql-env.d.ts, generated from ../../../schema.graphql by
// `npm run schema-types` (`npm run check:schema-types` fails when it is stale).
// `npm run typecheck` validates every document against the schema (`gql.tada check`).
import { initGraphQLTada } from 'gql.tada';
import type { introspection } from './graphql-env';

export const graphql = initGraphQLTada<{
  introspection: introspection;
  scalars: { UUID: string; DateTime: string; JSON: unknown };
  // Fragments only share selections: their fields are part of the result as they are.
  disableMasking: true;
}>();

export type { ResultOf, TadaDocumentNode, VariablesOf } from 'gql.tada';

/** An enum (or scalar) of the schema as a TypeScript type, e.g. `SchemaType<'FunctionStatus'>`. */
export type SchemaType<Name extends string> = ReturnType<typeof graphql.scalar<Name>>;
