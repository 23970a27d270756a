/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * result.c - gopro_strerror: one static sentence per enum gopro_result.
 * The context-specific detail (address, system call, errno) is kept by
 * each client context, so this function needs no state and is safe from
 * any thread.
 */
#include "gopro/gopro.h"

const char *
gopro_strerror(int result)
{
	static const char *const text[] = {
		[0] = "ok",
		[-GOPRO_E_SYSTEM] = "system call failed",
		[-GOPRO_E_NOMEM] = "out of memory",
		[-GOPRO_E_INVALID] = "invalid argument",
		[-GOPRO_E_ADDRESS] = "bad or unknown address",
		[-GOPRO_E_CONNECT] = "cannot connect",
		[-GOPRO_E_TIMEOUT] = "timed out",
		[-GOPRO_E_CLOSED] = "connection closed by the server",
		[-GOPRO_E_PROTOCOL] = "protocol error from the server",
		[-GOPRO_E_TOO_LARGE] = "frame from the server too large",
		[-GOPRO_E_SERVER] = "the server answered with ERROR",
		[-GOPRO_E_AUTH] = "login refused",
		[-GOPRO_E_BUSY] = "too many requests pending",
		[-GOPRO_E_NOT_CONNECTED] = "not connected",
		[-GOPRO_E_CANCELLED] = "cancelled",
	};

	if (result > 0 || result < GOPRO_RESULT_MIN)
		return "unknown result";
	return text[-result];
}
