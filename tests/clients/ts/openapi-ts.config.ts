import { defineConfig } from '@hey-api/openapi-ts';

// The service's checked-in schema, turned into a fetch-based client under generated/ (not committed).
export default defineConfig({
  input: '../../schema/openapi.json',
  output: 'generated',
  plugins: ['@hey-api/client-fetch', '@hey-api/typescript', '@hey-api/sdk'],
});
