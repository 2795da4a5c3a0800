// Monaco's web workers for GraphiQL, bundled by Vite from npm packages.
// (graphiql/setup-workers/vite does the same, but as a file inside a
// dependency it breaks Vite's dev-server pre-bundling; as our own source it
// works in both `vite` and `vite build`.)
import EditorWorker from 'monaco-editor/esm/vs/editor/editor.worker.js?worker';
import JsonWorker from 'monaco-editor/esm/vs/language/json/json.worker.js?worker';
import GraphQLWorker from 'monaco-graphql/esm/graphql.worker.js?worker';

(globalThis as unknown as { MonacoEnvironment: unknown }).MonacoEnvironment = {
  getWorker(_workerId: string, label: string): Worker {
    if (label === 'json') return new JsonWorker();
    if (label === 'graphql') return new GraphQLWorker();
    return new EditorWorker();
  },
};
