export async function runSimulate(_argv: string[]): Promise<number> {
  return 1;
}
