// The small helpers the commands share for what they print and for what a catch receives:
// src/cli/output.ts plural, src/cli/json-contract.ts deliveryStatusJson, src/lib/errors.ts
// errorMessage / errorCode / isPromptInterrupted.
import { describe, expect, it } from "vitest";
import { deliveryStatusJson } from "../src/cli/json-contract.js";
import { plural } from "../src/cli/output.js";
import { CommandError, errorCode, errorMessage, isPromptInterrupted } from "../src/lib/errors.js";

describe("plural", () => {
  it("one, many, and a given plural form", () => {
    expect(plural(1, "file")).toBe("1 file");
    expect(plural(0, "file")).toBe("0 files");
    expect(plural(2, "archived one")).toBe("2 archived ones");
    expect(plural(1, "organization is", "organizations are")).toBe("1 organization is");
    expect(plural(3, "organization is", "organizations are")).toBe("3 organizations are");
  });
});

describe("deliveryStatusJson", () => {
  it("maps a bulk delivery's statuses to the contract's", () => {
    expect(deliveryStatusJson("sent")).toBe("done");
    expect(deliveryStatusJson("failed")).toBe("failed");
    expect(deliveryStatusJson("not_sent")).toBe("not_attempted");
  });
});

describe("what a catch receives", () => {
  it("errorMessage: the message, else the value as text", () => {
    expect(errorMessage(new CommandError("refused here"))).toBe("refused here");
    expect(errorMessage({ message: "from an object" })).toBe("from an object");
    expect(errorMessage("a string")).toBe("a string");
    expect(errorMessage(42)).toBe("42");
    expect(errorMessage(null)).toBe("null");
    expect(errorMessage({ message: undefined })).toBe("[object Object]");
  });
  it("errorCode: a system error's or SQLSTATE code, else undefined", () => {
    expect(errorCode(Object.assign(new Error("no such file"), { code: "ENOENT" }))).toBe("ENOENT");
    expect(errorCode({ code: "2201B" })).toBe("2201B");
    expect(errorCode(new Error("plain"))).toBeUndefined();
    expect(errorCode("ENOENT")).toBeUndefined();
    expect(errorCode(undefined)).toBeUndefined();
  });
  it("isPromptInterrupted: @inquirer's Ctrl-C / Ctrl-D errors only", () => {
    const named = (name: string) => Object.assign(new Error("x"), { name });
    expect(isPromptInterrupted(named("ExitPromptError"))).toBe(true);
    expect(isPromptInterrupted(named("AbortPromptError"))).toBe(true);
    expect(isPromptInterrupted(named("Error"))).toBe(false);
    expect(isPromptInterrupted("ExitPromptError")).toBe(false);
    expect(isPromptInterrupted(null)).toBe(false);
  });
});
