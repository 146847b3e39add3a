FROM node:20-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY scripts ./scripts
COPY src ./src
COPY examples ./examples
RUN npm run build && npm prune --omit=dev
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["worker"]
