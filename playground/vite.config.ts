import { resolve } from 'node:path';
import { defineConfig, type Plugin } from 'vite';
import react from '@vitejs/plugin-react';

// `npm run dev` proxies the API to a running `projectnil serve`.
const api = process.env.PROJECTNIL_URL ?? 'http://127.0.0.1:8080';

// The server serves GraphiQL at /graphiql; mirror that in the dev server.
const graphiqlRoute: Plugin = {
  name: 'projectnil-graphiql-route',
  configureServer(server) {
    server.middlewares.use((req, _res, next) => {
      if (req.url === '/graphiql' || req.url?.startsWith('/graphiql?')) {
        req.url = req.url.replace('/graphiql', '/graphiql.html');
      }
      next();
    });
  },
};

export default defineConfig({
  base: '/',
  plugins: [react(), graphiqlRoute],
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    emptyOutDir: true,
    // GraphiQL brings Monaco, which is large; it is served locally, so that's fine.
    chunkSizeWarningLimit: 6000,
    rolldownOptions: {
      // GraphiQL's packages carry React-compiler directives that bundling drops harmlessly.
      onLog(level, log, handler) {
        if (log.code === 'MODULE_LEVEL_DIRECTIVE') return;
        handler(level, log);
      },
      input: {
        index: resolve(import.meta.dirname, 'index.html'),
        graphiql: resolve(import.meta.dirname, 'graphiql.html'),
      },
    },
  },
  worker: { format: 'es' },
  server: {
    // The example function lives beside the compiler (server/compiler/example.ts).
    fs: { allow: ['..'] },
    proxy: {
      '/graphql': { target: api, ws: true, changeOrigin: true },
      '/run': api,
      '/health': api,
      '/ready': api,
    },
  },
});
