// The gateway's container image: built from the AI Fabric source with its own build step
// (npm ci runs `prepare`, which compiles src/ to dist/), shipped without dev dependencies.

import { HOST, IMAGES, gatewayHealthScript, header, type RenderContext } from './common.ts';

export function gatewayContainerfile(ctx: RenderContext): string {
  const port = ctx.cfg.gateway.port;
  return `${header(ctx, '#', 'The AI Fabric gateway image. Build from the AI Fabric source folder:\n#   docker build -t IMAGE -f Containerfile /path/to/ai-fabric')}
FROM ${IMAGES.node} AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY src ./src
RUN npm ci --no-audit --no-fund && npm prune --omit=dev --no-audit --no-fund

FROM ${IMAGES.node}
WORKDIR ${HOST.gateway}
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/bin ./bin
COPY --from=build /src/dist ./dist
# The store and the usage spool: the node user's, so that a volume mounted there is too.
RUN mkdir -p ${HOST.dataDir} && chown node:node ${HOST.dataDir} && chmod 700 ${HOST.dataDir}
ENV NODE_ENV=production PATH=${HOST.gateway}/node_modules/.bin:$PATH FABRIC_DATA_DIR=${HOST.dataDir}
USER node
EXPOSE ${port}
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \\
  CMD ["node", "-e", ${JSON.stringify(gatewayHealthScript(ctx.cfg))}]
ENTRYPOINT ["${HOST.gateway}/bin/fabric"]
CMD ["serve", "--config", "${HOST.configDir}/fabric.yaml", "--host", "0.0.0.0", "--port", "${port}"]
`;
}
