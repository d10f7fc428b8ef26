import type { NextConfig } from 'next'

const config: NextConfig = {
  // The API and the coordinator live in the custom server (src/server.ts); Next serves pages only.
  reactStrictMode: true,
  poweredByHeader: false,
  typescript: { ignoreBuildErrors: true }, // typechecked by `npm run typecheck` instead of twice
}

export default config
