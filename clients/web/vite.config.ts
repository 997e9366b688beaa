import { defineConfig } from 'vite';

// `npm run dev -w @parley/web` serves the client with hot reload and forwards the API and the
// WebSocket to a running gateway (PARLEY_GATEWAY, default http://127.0.0.1:8080), so the browser
// sees one origin, exactly as when the gateway serves the built files itself.
const gateway = process.env.PARLEY_GATEWAY ?? 'http://127.0.0.1:8080';

export default defineConfig({
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: true, target: 'es2022' },
  server: {
    proxy: {
      '/api': { target: gateway, changeOrigin: false },
      '/ws': { target: gateway.replace(/^http/, 'ws'), ws: true },
    },
  },
});
