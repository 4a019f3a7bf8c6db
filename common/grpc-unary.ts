import { Metadata, type Client, type ServiceError } from '@grpc/grpc-js';
import { AUTHORIZATION_METADATA_KEY, bearer } from './fleet-api.js';

/** A method of a ts-proto generated grpc-js service definition. */
export interface UnaryMethod<Req, Res> {
  path: string;
  requestSerialize: (request: Req) => Buffer;
  responseDeserialize: (bytes: Buffer) => Res;
}

export interface CallOptions {
  /** Sent as `authorization: Bearer <credential>`. */
  credential?: string;
  /** Every call has a deadline; 10 s unless said otherwise. */
  deadlineMs?: number;
}

/** One unary call as a promise; a failure rejects with grpc-js's ServiceError (code, details). */
export function callUnary<Req, Res>(
  client: Client,
  method: UnaryMethod<Req, Res>,
  request: Req,
  options: CallOptions = {},
): Promise<Res> {
  const metadata = new Metadata();
  if (options.credential) metadata.set(AUTHORIZATION_METADATA_KEY, bearer(options.credential));
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(
      method.path,
      method.requestSerialize,
      method.responseDeserialize,
      request,
      metadata,
      { deadline: Date.now() + (options.deadlineMs ?? 10_000) },
      (err: ServiceError | null, response?: Res) =>
        err || response === undefined
          ? reject(err ?? new Error(`${method.path}: empty response`))
          : resolve(response),
    ),
  );
}
