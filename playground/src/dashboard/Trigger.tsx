// A function's HTTP trigger: its URL (POST /run/<name>), and the run panel's
// input as a ready-to-paste curl command or GraphQL mutation (snippets.ts).
import type { FunctionDetail } from './api';
import { triggerUrl } from '../shared/settings';
import { CopyButton, ManualCopy, useCopy } from './Copy';
import { useApiKey } from './hooks';
import { curlCommand, graphqlMutation } from './snippets';

type Snippet = 'curl' | 'graphql';

export function HttpTrigger({
  fn,
  input,
}: {
  fn: FunctionDetail;
  /** The run input; null while it is not a valid JSON object. */
  input: Record<string, unknown> | null;
}) {
  const apiKey = useApiKey();
  const { state, copy, close } = useCopy<Snippet>();
  const url = triggerUrl(fn.name);
  const texts: Record<Snippet, string> | null = input && {
    curl: curlCommand(url, input, apiKey),
    graphql: graphqlMutation(fn.id, input),
  };
  const invalid = texts ? undefined : 'Fix the run input first: it must be a JSON object';
  return (
    <section className="trigger" aria-labelledby="trigger-heading" data-testid="trigger">
      <div className="trigger-head">
        <h3 id="trigger-heading">HTTP trigger</h3>
        <span className="muted small">POST a JSON object, or GET ?a=1&amp;b=x (strings)</span>
      </div>
      <code className="trigger-url" data-testid="trigger-url">
        {url}
      </code>
      {fn.deployedRevision == null && (
        <span className="muted small">It answers 503 until a revision has compiled.</span>
      )}
      <div className="trigger-actions" aria-live="polite">
        <CopyButton
          copyKey="curl"
          label="Copy as curl"
          text={texts?.curl ?? null}
          state={state}
          onCopy={copy}
          title={invalid ?? 'A curl command that POSTs the run input to the trigger URL'}
          testId="copy-curl"
        />
        <CopyButton
          copyKey="graphql"
          label="Copy as GraphQL"
          text={texts?.graphql ?? null}
          state={state}
          onCopy={copy}
          title={invalid ?? 'An executeFunction mutation with the run input, to paste into GraphiQL'}
          testId="copy-graphql"
        />
        {apiKey && <span className="muted small">The curl command includes your API key.</span>}
      </div>
      {state?.how === 'manual' && texts && (
        <ManualCopy key={state.key} text={texts[state.key]} onClose={close} testId="manual-copy" />
      )}
    </section>
  );
}
